// Views with many matrices in the runtime (exec::tensor_view): each parameter's buffer tables,
// one per matrix; the staged copies of a view in another axis order; totals of full-size values
// added up over the matrices; global shares.
#include <numeric>

#include "runtime/optimizer_impl.h"

namespace opal {

namespace {

// dst = src with its axes in `perm` order (inverse: src is in perm order, dst in the original).
void permute(const float* src, float* dst, const std::vector<int64_t>& shape, const std::vector<int>& perm, bool inverse) {
  const size_t r = shape.size();
  std::vector<int64_t> stride(r, 1);  // of the original layout
  for (size_t i = r - 1; i > 0; --i) stride[i - 1] = stride[i] * shape[i];
  std::vector<int64_t> pshape(r), pstride(r);
  for (size_t i = 0; i < r; ++i) {
    pshape[i] = shape[size_t(perm[i])];
    pstride[i] = stride[size_t(perm[i])];
  }
  const int64_t n = std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
  std::vector<int64_t> idx(r, 0);
  int64_t off = 0;  // the original offset of permuted element e
  for (int64_t e = 0; e < n; ++e) {
    if (inverse) dst[off] = src[e];
    else dst[e] = src[off];
    for (size_t i = r; i-- > 0;) {  // the next permuted index, carrying the original offset
      if (++idx[i] < pshape[i]) {
        off += pstride[i];
        break;
      }
      off -= pstride[i] * (pshape[i] - 1);
      idx[i] = 0;
    }
  }
}

}  // namespace

void Optimizer::Impl::Tensor::set_bufs() {
  nbuf = exec::kFirstSlotBuffer + slots.size() + scratch.size();
  bufs.assign(size_t(batch) * nbuf, nullptr);
  const long long m = rows * cols;
  float* w = perm.empty() ? desc.data : stage_w.p;
  float* g = perm.empty() ? desc.grad : (desc.grad ? stage_g.p : nullptr);
  for (long long b = 0; b < batch; ++b) {
    float** B = matrix_bufs(b);
    B[exec::kParamBuffer] = w + b * m;
    B[exec::kGradBuffer] = g ? g + b * m : nullptr;
    size_t k = exec::kFirstSlotBuffer;
    for (const Buffer& s : slots) B[k++] = s.p + size_t(b) * (s.n / size_t(batch));
    for (const Buffer& s : scratch) B[k++] = s.p + size_t(b) * (s.n / size_t(batch));
  }
}

void Optimizer::Impl::stage_in(Tensor& t) {
  if (t.perm.empty() || !t.desc.grad) return;
  if (backend->host_memory()) {
    permute(t.desc.data, t.stage_w.p, t.desc.shape, t.perm, false);
    permute(t.desc.grad, t.stage_g.p, t.desc.shape, t.perm, false);
    return;
  }
  // on a device, through the host (a permuted view is for the odd tensor: a conv weight under
  // optax's Adafactor)
  const size_t n = t.numel();
  std::vector<float> a(n), b(n);
  for (auto [from, to] : {std::pair{t.desc.data, t.stage_w.p}, std::pair{t.desc.grad, t.stage_g.p}}) {
    backend->download(a.data(), from, n);
    permute(a.data(), b.data(), t.desc.shape, t.perm, false);
    backend->upload(to, b.data(), n);
  }
}

void Optimizer::Impl::stage_out(Tensor& t) {
  if (t.perm.empty() || !t.desc.grad) return;
  if (backend->host_memory()) {
    permute(t.stage_w.p, t.desc.data, t.desc.shape, t.perm, true);
    return;
  }
  const size_t n = t.numel();
  std::vector<float> a(n), b(n);
  backend->download(a.data(), t.stage_w.p, n);
  permute(a.data(), b.data(), t.desc.shape, t.perm, true);
  backend->upload(t.desc.data, b.data(), n);
}

// The first `matrices` matrices' one-value buffer `buffer`, added in matrix order, in double
// (deterministic).
double Optimizer::Impl::sum_scalars(Tensor& t, uint32_t buffer, long long matrices) {
  double sum = 0;
  for (long long b = 0; b < matrices; ++b) {
    float v = 0;
    backend->download(&v, t.matrix_bufs(b)[buffer], 1);
    sum += double(v);
  }
  return sum;
}

void Optimizer::Impl::combine_whole(Tensor& t, uint32_t buffer) {
  const float total = float(sum_scalars(t, buffer, t.batch));
  for (long long b = 0; b < t.batch; ++b) backend->upload(t.matrix_bufs(b)[buffer], &total, 1);
}

double Optimizer::Impl::share(Tensor& t, uint32_t buffer, bool per_matrix) { return sum_scalars(t, buffer, per_matrix ? t.batch : 1); }

}  // namespace opal
