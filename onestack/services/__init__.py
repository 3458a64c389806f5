"""The domain: validation, policy, quotas, state machines, transactions."""
