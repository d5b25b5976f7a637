// The ConvLSTM's per-step gate arithmetic in one pass over memory, forward and backward.
//
// Layout (as in dfdetect/models/layers/convlstm/layer.py): one step's gates are (B, 4n, H, W) contiguous, in
// Keras order i, f, g (cell input), o, with i, f, o already scaled to 0.2 x + 0.5; cells, hidden
// states and their gradients are (B, n, H, W). Per sample, every gate block is one contiguous run
// of n * H * W values, so the kernels walk (sample, offset) ranges with at::vec::Vectorized
// (torch's own tanh, so the values equal the unfused ops' to rounding) on torch's thread pool.

#include "convlstm_gates.h"

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>

namespace {

using at::vec::Vectorized;

constexpr int64_t kGrain = 4096;

// Calls body(sample, begin, end) over offset ranges of the B samples' n * H * W values.
template <typename Body>
void for_each_range(int64_t samples, int64_t per_sample, const Body& body) {
  at::parallel_for(0, samples * per_sample, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t index = begin; index < end;) {
      const int64_t sample = index / per_sample;
      const int64_t offset = index % per_sample;
      const int64_t stop = std::min(per_sample, offset + (end - index));
      body(sample, offset, stop);
      index += stop - offset;
    }
  });
}

template <typename scalar_t>
Vectorized<scalar_t> clip01(const Vectorized<scalar_t>& x) {
  return at::vec::minimum(at::vec::maximum(x, Vectorized<scalar_t>(0)), Vectorized<scalar_t>(1));
}

// 1 where 0 < x < 1 (the clip passes the gradient), else 0 (NaN gives 0, as hardtanh_backward)
template <typename scalar_t>
Vectorized<scalar_t> inside01(const Vectorized<scalar_t>& x) {
  const Vectorized<scalar_t> one(1);
  const auto mask = (x > Vectorized<scalar_t>(0)) & (x < one);
  return Vectorized<scalar_t>::blendv(Vectorized<scalar_t>(0), one, mask);
}

template <typename scalar_t>
void forward_step(at::Tensor& gates, const at::Tensor* cell_prev, at::Tensor& cell, at::Tensor& hidden) {
  using Vec = Vectorized<scalar_t>;
  const int64_t samples = hidden.size(0), block = hidden.numel() / samples;
  scalar_t* gate_data = gates.data_ptr<scalar_t>();
  const scalar_t* prev_data = cell_prev ? cell_prev->data_ptr<scalar_t>() : nullptr;
  scalar_t* cell_data = cell.data_ptr<scalar_t>();
  scalar_t* hidden_data = hidden.data_ptr<scalar_t>();
  for_each_range(samples, block, [&](int64_t b, int64_t begin, int64_t end) {
    scalar_t* i_ptr = gate_data + b * 4 * block;
    scalar_t* f_ptr = i_ptr + block;
    scalar_t* g_ptr = f_ptr + block;
    scalar_t* o_ptr = g_ptr + block;
    const scalar_t* prev = prev_data ? prev_data + b * block : nullptr;
    scalar_t* c_ptr = cell_data + b * block;
    scalar_t* h_ptr = hidden_data + b * block;
    for (int64_t j = begin; j < end; j += Vec::size()) {
      const int64_t count = std::min<int64_t>(Vec::size(), end - j);
      const Vec i = clip01(Vec::loadu(i_ptr + j, count));
      const Vec g = Vec::loadu(g_ptr + j, count).tanh();
      const Vec o = clip01(Vec::loadu(o_ptr + j, count));
      Vec c = i * g;
      if (prev) {
        const Vec f = clip01(Vec::loadu(f_ptr + j, count));
        c = c + f * Vec::loadu(prev + j, count);
        f.store(f_ptr + j, count);
      } else {
        clip01(Vec::loadu(f_ptr + j, count)).store(f_ptr + j, count);
      }
      i.store(i_ptr + j, count);
      g.store(g_ptr + j, count);
      o.store(o_ptr + j, count);
      c.store(c_ptr + j, count);
      (o * c.tanh()).store(h_ptr + j, count);
    }
  });
}

template <typename scalar_t>
void backward_step(
    const at::Tensor& gates,
    const at::Tensor& cell,
    const at::Tensor* cell_prev,
    const at::Tensor& grad_hidden,
    bool has_grad_cell_next,
    at::Tensor& grad_gates,
    at::Tensor& grad_cell) {
  using Vec = Vectorized<scalar_t>;
  const int64_t samples = cell.size(0), block = cell.numel() / samples;
  const int64_t grad_hidden_stride = grad_hidden.stride(0);
  const scalar_t* gate_data = gates.data_ptr<scalar_t>();
  const scalar_t* cell_data = cell.data_ptr<scalar_t>();
  const scalar_t* prev_data = cell_prev ? cell_prev->data_ptr<scalar_t>() : nullptr;
  const scalar_t* grad_hidden_data = grad_hidden.data_ptr<scalar_t>();
  scalar_t* grad_data = grad_gates.data_ptr<scalar_t>();
  scalar_t* grad_cell_data = grad_cell.data_ptr<scalar_t>();
  for_each_range(samples, block, [&](int64_t b, int64_t begin, int64_t end) {
    const scalar_t* i_ptr = gate_data + b * 4 * block;
    const scalar_t* f_ptr = i_ptr + block;
    const scalar_t* g_ptr = f_ptr + block;
    const scalar_t* o_ptr = g_ptr + block;
    const scalar_t* c_ptr = cell_data + b * block;
    const scalar_t* prev = prev_data ? prev_data + b * block : nullptr;
    const scalar_t* dh_ptr = grad_hidden_data + b * grad_hidden_stride;
    scalar_t* di_ptr = grad_data + b * 4 * block;
    scalar_t* df_ptr = di_ptr + block;
    scalar_t* dg_ptr = df_ptr + block;
    scalar_t* do_ptr = dg_ptr + block;
    scalar_t* dc_ptr = grad_cell_data + b * block;
    const Vec one(1);
    for (int64_t j = begin; j < end; j += Vec::size()) {
      const int64_t count = std::min<int64_t>(Vec::size(), end - j);
      const Vec i = Vec::loadu(i_ptr + j, count);
      const Vec f = Vec::loadu(f_ptr + j, count);
      const Vec g = Vec::loadu(g_ptr + j, count);
      const Vec o = Vec::loadu(o_ptr + j, count);
      const Vec dh = Vec::loadu(dh_ptr + j, count);
      const Vec tanh_c = Vec::loadu(c_ptr + j, count).tanh();
      Vec dc = dh * o * (one - tanh_c * tanh_c);
      if (has_grad_cell_next) {
        dc = dc + Vec::loadu(dc_ptr + j, count);
      }
      (dc * g * inside01(i)).store(di_ptr + j, count);
      if (prev) {
        (dc * Vec::loadu(prev + j, count) * inside01(f)).store(df_ptr + j, count);
      } else {
        Vec(0).store(df_ptr + j, count);
      }
      (dc * i * (one - g * g)).store(dg_ptr + j, count);
      (dh * tanh_c * inside01(o)).store(do_ptr + j, count);
      (dc * f).store(dc_ptr + j, count);
    }
  });
}

}  // namespace

void gates_forward(
    at::Tensor gates, c10::optional<at::Tensor> cell_prev, at::Tensor cell, at::Tensor hidden) {
  const at::Tensor* prev = cell_prev.has_value() ? &cell_prev.value() : nullptr;
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "convlstm_gates_forward", [&] {
    forward_step<scalar_t>(gates, prev, cell, hidden);
  });
}

void gates_backward(
    at::Tensor gates,
    at::Tensor cell,
    c10::optional<at::Tensor> cell_prev,
    at::Tensor grad_hidden,
    bool has_grad_cell_next,
    at::Tensor grad_gates,
    at::Tensor grad_cell) {
  const at::Tensor* prev = cell_prev.has_value() ? &cell_prev.value() : nullptr;
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "convlstm_gates_backward", [&] {
    backward_step<scalar_t>(gates, cell, prev, grad_hidden, has_grad_cell_next, grad_gates, grad_cell);
  });
}

