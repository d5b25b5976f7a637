"""Facial cloaking attacks against our differentiable face networks (PuFace's threat): Fawkes v0.3
targeted and v1.0 untargeted, LowKey, and amplified cloaks ``x + k (x' - x)``. Batched tensors,
any device."""
