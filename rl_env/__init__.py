"""The adaptive MixUp strategy: the choice of k as an RLlib environment coupled to the running FR learner."""
