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
  // a 16-bit w or g stepped in place is addressed in its own elements: the kernels cast
  // (opal_tensor_t.dt says how)
  auto* w = static_cast<char*>(staged ? stage_w.p : desc.data);
  auto* g = static_cast<char*>(staged_g ? (desc.grad ? stage_g.p : nullptr) : desc.grad);
  const size_t wsize = staged ? 4 : exec::dtype_size(desc.dtype), gsize = staged_g ? 4 : exec::dtype_size(desc.grad_dtype);
  for (long long b = 0; b < batch; ++b) {
    float** B = matrix_bufs(b);
    B[exec::kParamBuffer] = reinterpret_cast<float*>(w + size_t(b * m) * wsize);
    B[exec::kGradBuffer] = g ? reinterpret_cast<float*>(g + size_t(b * m) * gsize) : nullptr;
    size_t k = exec::kFirstSlotBuffer;
    for (const Buffer& s : slots) B[k++] = reinterpret_cast<float*>(reinterpret_cast<char*>(s.p) + size_t(b) * (s.bytes() / size_t(batch)));
    for (const Buffer& s : scratch) B[k++] = s.p + size_t(b) * (s.n / size_t(batch));
  }
}

void Optimizer::Impl::update_staging(const exec::Description& d, Tensor& t) {
  // a sharded parameter's rows run no library call: they step in place
  const bool views = !t.perm.empty() || (!t.is_f32() && !d.routes[t.route].calls.empty());
  t.staged = t.part != Tensor::Part::Local && (views || t.has_master());
  t.staged_g = t.staged && (views || t.part != Tensor::Part::All);
  if (t.staged && !t.stage_w.p) t.stage_w = alloc(t.numel());
  if (t.staged_g && !t.stage_g.p) t.stage_g = alloc(t.numel());
}

std::vector<float> Optimizer::Impl::read_f32(const void* src, DType dt, size_t n) const {
  std::vector<float> v(n);
  if (dt == DType::F32) backend->download(v.data(), static_cast<const float*>(src), n);
  else if (backend->host_memory()) convert_host(v.data(), DType::F32, src, dt, n);
  else if (dt == DType::Q8) {  // q8 codes: their bytes, as the words they are allocated in
    std::vector<float> words((n + 3) / 4);
    backend->download(words.data(), static_cast<const float*>(src), words.size());
    convert_host(v.data(), DType::F32, words.data(), dt, n);
  } else {
    float* tmp = backend->alloc(n);
    try {
      backend->convert(tmp, DType::F32, src, dt, n, {});
      backend->download(v.data(), tmp, n);
    } catch (...) {
      backend->release(tmp);
      throw;
    }
    backend->release(tmp);
  }
  return v;
}

void Optimizer::Impl::write_f32(void* dst, DType dt, const float* src, size_t n) {
  if (dt == DType::F32) backend->upload(static_cast<float*>(dst), src, n);
  else if (backend->host_memory()) convert_host(dst, dt, src, DType::F32, n);
  else if (dt == DType::Q8) {
    std::vector<float> words((n + 3) / 4, 0.f);
    convert_host(words.data(), dt, src, DType::F32, n);
    backend->upload(static_cast<float*>(dst), words.data(), words.size());
  } else {
    float* tmp = backend->alloc(n);
    try {
      backend->upload(tmp, src, n);
      backend->convert(dst, dt, tmp, DType::F32, n, {});
      backend->sync();
    } catch (...) {
      backend->release(tmp);
      throw;
    }
    backend->release(tmp);
  }
}

// Staged copies: w and g converted to f32, permuted into the view's axis order where it has one
// (on the host: a permuted view is for the odd tensor, a conv weight under optax's Adafactor).
void Optimizer::Impl::stage_in(Tensor& t) {
  if (!t.staged || !t.desc.grad) return;
  const size_t n = t.numel();
  const std::pair<const void*, DType> from[] = {{t.desc.data, t.desc.dtype}, {t.desc.grad, t.desc.grad_dtype}};
  float* to[] = {t.stage_w.p, t.stage_g.p};
  for (int k = 0; k < 2; ++k) {
    if (k == 0 && t.has_master() && t.master_valid) continue;  // the master copy is w
    if (k == 1 && !t.staged_g) continue;                       // the kernels load g where it is
    const auto [src, dt] = from[k];
    if (t.perm.empty()) backend->convert(to[k], DType::F32, src, dt, n, {});
    else if (backend->host_memory() && dt == DType::F32) permute(static_cast<const float*>(src), to[k], t.desc.shape, t.perm, false);
    else {
      std::vector<float> a = read_f32(src, dt, n), b(n);
      permute(a.data(), b.data(), t.desc.shape, t.perm, false);
      backend->upload(to[k], b.data(), n);
    }
  }
  t.master_valid = t.has_master();
}

void Optimizer::Impl::sync_master(Tensor& t) {
  if (!t.has_master() || t.master_valid || !t.desc.data) return;
  const size_t n = t.numel();
  if (t.perm.empty()) backend->convert(t.stage_w.p, DType::F32, t.desc.data, t.desc.dtype, n, {});
  else {
    std::vector<float> a = read_f32(t.desc.data, t.desc.dtype, n), b(n);
    permute(a.data(), b.data(), t.desc.shape, t.perm, false);
    backend->upload(t.stage_w.p, b.data(), n);
  }
  t.master_valid = true;
}

void Optimizer::Impl::stage_out(Tensor& t) {
  if (!t.staged || !t.desc.grad) return;
  const size_t n = t.numel();
  if (t.perm.empty()) {
    backend->convert(t.desc.data, t.desc.dtype, t.stage_w.p, DType::F32, n, rounding(t));
    return;
  }
  if (backend->host_memory() && t.desc.dtype == DType::F32) {
    permute(t.stage_w.p, static_cast<float*>(t.desc.data), t.desc.shape, t.perm, true);
    return;
  }
  std::vector<float> a(n), b(n);
  backend->download(a.data(), t.stage_w.p, n);
  permute(a.data(), b.data(), t.desc.shape, t.perm, true);
  backend->upload(t.stage_g.p, b.data(), n);  // the staged gradient is spent: w in the parameter's order
  backend->convert(t.desc.data, t.desc.dtype, t.stage_g.p, DType::F32, n, rounding(t));
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
