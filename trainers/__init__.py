"""The FR learner: backbones, margin heads, the mixed-label loss, the Ray Train loop and verification."""
