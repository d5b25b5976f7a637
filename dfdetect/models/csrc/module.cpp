// dfdetect's CPU kernels as one Python extension module (built by dfdetect/models/cpu_kernels.py).

#include <torch/extension.h>

void gates_forward(at::Tensor gates, c10::optional<at::Tensor> cell_prev, at::Tensor cell, at::Tensor hidden);
void gates_backward(
    at::Tensor gates,
    at::Tensor cell,
    c10::optional<at::Tensor> cell_prev,
    at::Tensor grad_hidden,
    bool has_grad_cell_next,
    at::Tensor grad_gates,
    at::Tensor grad_cell);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("gates_forward", &gates_forward, "ConvLSTM gate activations, cell and hidden state of one step");
  m.def("gates_backward", &gates_backward, "ConvLSTM gate gradients of one step");
}
