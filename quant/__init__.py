"""Golden model (the bit-exact specification) of the MX8 state-update engine."""
