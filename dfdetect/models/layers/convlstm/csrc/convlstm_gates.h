// The ConvLSTM gate kernels (convlstm_gates.cpp), as the extension module binds them (module.cpp).

#pragma once

#include <torch/extension.h>

// gates (B, 4n, H, W): scaled pre-activations in, activations out; cell, hidden (B, n, H, W) out
void gates_forward(at::Tensor gates, c10::optional<at::Tensor> cell_prev, at::Tensor cell, at::Tensor hidden);

// grad_gates (B, 4n, H, W) out; grad_cell (B, n, H, W): the next step's cell gradient (times its
// forget gate) in when has_grad_cell_next, this step's times f out
void gates_backward(
    at::Tensor gates,
    at::Tensor cell,
    c10::optional<at::Tensor> cell_prev,
    at::Tensor grad_hidden,
    bool has_grad_cell_next,
    at::Tensor grad_gates,
    at::Tensor grad_cell);
