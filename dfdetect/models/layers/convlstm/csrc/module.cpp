// dfdetect's CPU kernels as one Python extension module (built by dfdetect/models/layers/convlstm/cpu_kernels.py).

#include "convlstm_gates.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("gates_forward", &gates_forward, "ConvLSTM gate activations, cell and hidden state of one step");
  m.def("gates_backward", &gates_backward, "ConvLSTM gate gradients of one step");
}
