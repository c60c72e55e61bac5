"""REINFORCE with a learned value baseline, as an RLlib algorithm on the new API stack.

`config.py` holds its settings (`ReinforceConfig`), `algorithm.py` its training step (`Reinforce`),
`learner.py` the policy-gradient loss, `module.py` the policy and value networks.
"""
