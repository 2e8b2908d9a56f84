// The CUDA backend (libopal_cuda.so): device memory, kernels compiled by NVRTC and loaded as
// CUDA libraries, multi-tensor launches (one launch per kernel for every tensor of a route:
// blockIdx.y picks the tensor), cuBLAS batched GEMMs (fp32, or bf16 with fp32 accumulation)
// and the other library calls without host round trips (linalg.h: cuSOLVER's eigensolvers and
// QR, cuBLAS's triangular solves, in double; canonical forms, inverse roots, norm bounds, sorting
// with kernels of its own). Only the CUDA runtime API is used: no libcuda at
// link time, so this plugin loads on machines without a driver and reports that cleanly.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <variant>

#include <fmt/format.h>

#include "support/bf16.h"
#include "runtime/backend.h"
#include "runtime/cuda/cuda_support.h"
#include "runtime/cuda/linalg.h"
#include "runtime/cuda/gemm_layout.h"
#include "runtime/cuda/helpers.h"
#include "runtime/cuda/nvrtc_compile.h"
#include "runtime/error.h"

namespace opal::cuda {

std::shared_ptr<LibraryHandles> library_handles(int ordinal) {
  static std::mutex mu;
  static std::map<int, std::weak_ptr<LibraryHandles>> all;
  std::lock_guard<std::mutex> lock(mu);
  if (auto h = all[ordinal].lock()) return h;
  auto h = std::make_shared<LibraryHandles>();
  all[ordinal] = h;
  return h;
}

void LibraryHandles::make() {
  if (!blas) check(cublasCreate(&blas), "cublasCreate");
  if (!solver) check(cusolverDnCreate(&solver), "cusolverDnCreate");
  if (!syevj) check(cusolverDnCreateSyevjInfo(&syevj), "cusolverDnCreateSyevjInfo");
}

// The device's properties, read once a process (cudaGetDeviceProperties is slow: it reads every
// attribute, some through the driver's management library).
const cudaDeviceProp& device_props(int ordinal) {
  static std::mutex mu;
  static std::map<int, cudaDeviceProp> all;
  std::lock_guard<std::mutex> lock(mu);
  auto it = all.find(ordinal);
  if (it == all.end()) {
    cudaDeviceProp p{};
    CK(cudaGetDeviceProperties(&p, ordinal));
    it = all.emplace(ordinal, p).first;
  }
  return it->second;
}

namespace {

constexpr int kBlock = exec::kCudaBlock;

// Selects a device for the duration of one backend call and gives the caller's thread back
// the device it had: a host (PyTorch under DDP on cuda:LOCAL_RANK) never finds its current
// device changed by a step.
class DeviceScope {
 public:
  explicit DeviceScope(int ordinal) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    if (previous_ != ordinal) check(cudaSetDevice(ordinal), "cudaSetDevice(ordinal)");
    else previous_ = -1;  // nothing to restore
  }
  ~DeviceScope() {
    if (previous_ >= 0) cudaSetDevice(previous_);
  }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  int previous_ = -1;
};

// Owners of staged tables other than kernel modules (TableKey::owner).
const char kZeroTables = 0, kGemmTables = 0, kRoundTables = 0, kLinalgTables = 0, kBf16Tables = 0;

long long tiles(long long n) { return (n + exec::kReduceTile - 1) / exec::kReduceTile; }
unsigned blocks_for(long long n) { return unsigned(std::clamp<long long>((n + kBlock - 1) / kBlock, 1, exec::kCudaMaxBlocks)); }

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int ordinal) : ordinal_(ordinal) {
    DeviceScope on(ordinal_);
    props_ = device_props(ordinal);
    CK(cudaFree(nullptr));  // creates the primary context now, not in the first step
    arch_ = fmt::format("sm_{}{}", props_.major, props_.minor);
    lib_ = library_handles(ordinal_);
    CK(cudaEventCreateWithFlags(&queued_, cudaEventDisableTiming));
    helpers_ = load(helpers_source(), helper_symbols());
  }
  ~CudaBackend() override {
    DeviceScope on(ordinal_);
    cudaStreamSynchronize(nullptr);  // the default stream waits for every step (end_step)
    helpers_.reset();
    if (queued_) cudaEventDestroy(queued_);
    for (auto& [_, t] : tables_) t.dev.release();
    for (Upload& u : uploads_) {
      u.mem.release();
      if (u.sent) cudaEventDestroy(u.sent);
    }
    for (auto& [_, p] : partials_) p.release();
    linalg_.reset();
    work2_.release();
    lib_.reset();
  }

  Device device() const override { return {DeviceKind::Cuda, ordinal_}; }
  std::string describe() const override { return fmt::format("cuda:{} {} ({})", ordinal_, props_.name, arch_); }
  bool host_memory() const override { return false; }

  float* alloc(size_t n) override {
    DeviceScope on(ordinal_);
    void* p = nullptr;
    size_t bytes = std::max<size_t>(n, 1) * sizeof(float);
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess)
      throw Error(fmt::format("cannot allocate {:.1f} MiB on {}: {}", double(bytes) / (1 << 20), describe(), cudaGetErrorString(e)));
    CK(cudaMemset(p, 0, bytes));
    CK(cudaDeviceSynchronize());
    return static_cast<float*>(p);
  }
  void release(float* p) override {
    DeviceScope on(ordinal_);
    if (p) cudaFree(p);
  }
  void upload(float* dst, const float* src, size_t n) override {
    DeviceScope on(ordinal_);
    CK(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyHostToDevice, stream_));
    CK(cudaStreamSynchronize(stream_));
  }
  void download(float* dst, const float* src, size_t n) override {
    DeviceScope on(ordinal_);
    CK(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    CK(cudaStreamSynchronize(stream_));
  }
  void copy(float* dst, const float* src, size_t n) override {
    DeviceScope on(ordinal_);
    if (n && dst != src) CK(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice, stream_));
  }
  void copy_bytes(void* dst, const void* src, size_t bytes) override {
    DeviceScope on(ordinal_);
    if (bytes && dst != src) CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
  }
  void download_bytes(void* dst, const void* src, size_t bytes) override {
    DeviceScope on(ordinal_);
    CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    CK(cudaStreamSynchronize(stream_));
  }
  void zero_bytes(void* dst, size_t bytes) override {
    DeviceScope on(ordinal_);
    if (bytes) CK(cudaMemsetAsync(dst, 0, bytes, stream_));
  }
  void convert(void* dst, exec::DType to, const void* src, exec::DType from, size_t n, const Rounding& r) override {
    if (n == 0) return;
    DeviceScope on(ordinal_);
    int to_code = int(to), from_code = int(from), sr = r.stochastic ? 1 : 0;
    long long count = (long long)n, base = r.base;
    unsigned long long id = r.id;
    double t = r.t;
    void* args[] = {&dst, &to_code, &src, &from_code, &count, &id, &t, &base, &sr};
    CK(cudaLaunchKernel(reinterpret_cast<const void*>(helpers_->kernels[kConvert]), dim3(blocks_for(count)), dim3(kBlock), args, 0, stream_));
  }
  void zero(const std::vector<std::pair<float*, size_t>>& bufs) override {
    if (bufs.empty()) return;
    DeviceScope on(ordinal_);
    for (size_t at = 0; at < bufs.size(); at += 65535) {
      const size_t count = std::min<size_t>(65535, bufs.size() - at);
      std::vector<char> host(count * 16);
      unsigned long long max_n = 1;
      for (size_t i = 0; i < count; ++i) {
        float* p = bufs[at + i].first;
        unsigned long long n = bufs[at + i].second;
        std::memcpy(host.data() + i * 8, &p, 8);
        std::memcpy(host.data() + (count + i) * 8, &n, 8);
        max_n = std::max(max_n, n);
      }
      char* dev = stage(TableKey{&kZeroTables, at, bufs[at].first}, host);
      float* const* ptrs = reinterpret_cast<float* const*>(dev);
      const unsigned long long* sizes = reinterpret_cast<const unsigned long long*>(dev + count * 8);
      void* args[] = {&ptrs, &sizes};
      CK(cudaLaunchKernel(reinterpret_cast<const void*>(helpers_->kernels[kZeroMany]), dim3(blocks_for((long long)max_n), unsigned(count)),
                          dim3(kBlock), args, 0, stream_));
    }
  }

  std::shared_ptr<KernelModule> compile(const std::string& source, const std::vector<std::string>& symbols) override {
    DeviceScope on(ordinal_);
    return load(source, symbols);
  }

  void launch(const KernelModule& m, const exec::KernelLaunch& K, const KernelTensor* tensors, size_t n, size_t n_buffers, long long max_n,
              const double* uniforms, size_t n_uniforms) override {
    DeviceScope on(ordinal_);
    const auto& mod = static_cast<const CudaModule&>(m);
    const size_t i = K.symbol;
    const exec::Partials& partials = K.partials;
    // opal_uniforms_t { double t; double hp[max(1, H)]; }: at least two doubles
    double padded[2] = {n_uniforms ? uniforms[0] : 0.0, 0.0};
    void* U = const_cast<double*>(n_uniforms >= 2 ? uniforms : padded);
    // a kernel with reductions finds its partial sums after the tensor's table
    const size_t entries = n_buffers + (partials.any() ? 1 : 0);
    // a chunked kernel takes every tensor in one launch (its blocks index chunks, not tensors)
    const size_t per_launch = K.chunk ? std::max<size_t>(n, 1) : 65535;
    for (size_t at = 0; at < n; at += per_launch) {
      const size_t count = std::min<size_t>(per_launch, n - at);
      // [count x opal_tensor_t][count buffer tables of `entries` pointers][the chunks], the
      // structs pointing into the device copy
      const size_t head = count * sizeof(KernelTensor), table = entries * sizeof(float*);
      size_t chunks = 0;
      if (K.chunk)
        for (size_t k = 0; k < count; ++k) chunks += size_t((tensors[at + k].rows * tensors[at + k].cols + K.chunk - 1) / K.chunk);
      if (K.chunk && chunks == 0) continue;  // every tensor empty
      if (chunks > size_t(std::numeric_limits<int>::max())) throw Error(fmt::format("{} chunks in one launch: more than a grid holds", chunks));
      const size_t chunk_at = head + count * table;
      Table& dev_table = reserve(TableKey{&m, i * 1000003 + at, nullptr}, chunk_at + chunks * sizeof(exec::KernelChunk));
      char* base = static_cast<char*>(dev_table.dev.p);
      std::vector<char>& host = staging_;
      host.assign(chunk_at, 0);
      for (size_t k = 0; k < count; ++k) {
        KernelTensor t = tensors[at + k];
        std::memcpy(host.data() + head + k * table, t.buf, n_buffers * sizeof(float*));
        if (partials.any()) {
          float* p = partials_for(TableKey{&m, i, t.buf}, exec::partials_layout(partials, t.rows, t.cols).end);
          std::memcpy(host.data() + head + k * table + n_buffers * sizeof(float*), &p, sizeof p);
        }
        t.buf = reinterpret_cast<float* const*>(base + head + k * table);
        std::memcpy(host.data() + k * sizeof(KernelTensor), &t, sizeof t);
      }
      // the chunks follow from the tensors' sizes: listed again only when the tensors changed
      const size_t total = chunk_at + chunks * sizeof(exec::KernelChunk);
      if (K.chunk && !(dev_table.size == total && std::memcmp(dev_table.held.data(), host.data(), chunk_at) == 0)) {
        host.resize(total);
        for (size_t k = 0, c = 0; k < count; ++k)
          for (long long e = 0; e < tensors[at + k].rows * tensors[at + k].cols; e += K.chunk, ++c) {
            const exec::KernelChunk ch{uint32_t(k), uint32_t(e / K.chunk)};
            std::memcpy(host.data() + chunk_at + c * sizeof ch, &ch, sizeof ch);
          }
      }
      const KernelTensor* dev = reinterpret_cast<const KernelTensor*>(host.size() == total ? stage(dev_table, host) : base);
      const exec::KernelChunk* dev_chunks = K.chunk ? reinterpret_cast<const exec::KernelChunk*>(base + chunk_at) : nullptr;
      void* args[] = {&dev, &dev_chunks, U};
      // a kernel with row or column sums runs a block per 32 x 32 tile (up to the grid's limit)
      long long blocks = blocks_for(max_n);
      if (partials.rows || partials.cols) {
        blocks = 1;
        for (size_t k = 0; k < count; ++k) blocks = std::max(blocks, tiles(tensors[at + k].rows) * tiles(tensors[at + k].cols));
        blocks = std::min<long long>(blocks, exec::kCudaMaxBlocks);
      }
      const dim3 grid = K.chunk ? dim3(unsigned(chunks)) : dim3(unsigned(blocks), unsigned(count));
      CK(cudaLaunchKernel(reinterpret_cast<const void*>(mod.kernels[i]), grid, dim3(kBlock), args, 0, stream_));
    }
  }

  // Library calls run here, on the device: Eigh, InvRoot, QR, the triangular solves and the norm
  // bound (Linalg), and an eigenbasis refresh's sorting (diag, argsort, the permutations); GEMMs
  // go the generic way (library_calls.h) to gemm().
  bool run_call(const exec::LibraryCall& call, const CallTensor* tensors, size_t n) override {
    if (Linalg::takes(call)) {
      DeviceScope on(ordinal_);
      if (!linalg_) linalg_ = std::make_unique<Linalg>();
      const Linalg::Env env{stream_, *lib_, [this](const std::string& src, const std::vector<std::string>& symbols) { return load(src, symbols); },
                            [this](size_t slot, const void* first, const std::vector<char>& bytes) {
                              return stage(TableKey{&kLinalgTables, slot, first}, bytes);
                            }};
      linalg_->run(env, call, tensors, n);
      return true;
    }
    const bool diag = std::holds_alternative<exec::Diag>(call.op), rows = std::holds_alternative<exec::PermuteRows>(call.op);
    const auto* sort = std::get_if<exec::Argsort>(&call.op);
    if (!diag && !sort && !rows && !std::holds_alternative<exec::PermuteCols>(call.op)) return false;
    DeviceScope on(ordinal_);
    for (size_t t = 0; t < n; ++t) {
      const CallTensor& T = tensors[t];
      const exec::Dims d0 = exec::dims_of(call.in[0].extent, T.rows, T.cols);
      const float* x = T.bufs[call.in[0].buffer];
      float* out = T.bufs[call.out];
      long long r = d0.rows, c = d0.cols;
      if (diag) {
        void* args[] = {&x, &out, &r};
        CK(cudaLaunchKernel(reinterpret_cast<const void*>(helpers_->kernels[kDiag]), dim3(blocks_for(r)), dim3(kBlock), args, 0, stream_));
      } else if (sort) {
        int desc = sort->descending ? 1 : 0;
        void* args[] = {&x, &out, &r, &desc};
        CK(cudaLaunchKernel(reinterpret_cast<const void*>(helpers_->kernels[kArgsort]), dim3(blocks_for(r)), dim3(kBlock), args, 0, stream_));
      } else {
        const float* idx = T.bufs[call.in[1].buffer];
        int by_rows = rows ? 1 : 0;
        void* args[] = {&x, &idx, &out, &r, &c, &by_rows};
        CK(cudaLaunchKernel(reinterpret_cast<const void*>(helpers_->kernels[kPermute]), dim3(blocks_for(r * c)), dim3(kBlock), args, 0, stream_));
      }
    }
    return true;
  }

  long long max_call_side() const override { return std::numeric_limits<int>::max(); }  // cuBLAS's and cuSOLVER's int sizes

  bool gemm(const GemmBatch& b) override {
    const size_t count = b.C.size();
    if (count == 0) return true;
    DeviceScope on(ordinal_);
    std::lock_guard<std::mutex> lock(lib_->mu);
    lib_->make();
    cublasHandle_t blas = lib_->blas;
    CK(cublasSetStream(blas, stream_));
    const float one = 1.f, zero = 0.f;
    const ColumnMajorGemm cm = column_major(b);
    const cublasOperation_t op1 = cm.trans_first ? CUBLAS_OP_T : CUBLAS_OP_N, op2 = cm.trans_second ? CUBLAS_OP_T : CUBLAS_OP_N;
    // cuBLAS's GemmEx entry points take int sizes: a matrix side or leading dimension past
    // INT_MAX (possible: a parameter may have 2^34 elements) is refused, never truncated
    for (long long v : {(long long)cm.m, (long long)cm.n, (long long)cm.k, (long long)cm.ld_first, (long long)cm.ld_second, (long long)cm.ldc})
      if (v > std::numeric_limits<int>::max())
        throw Error(
            fmt::format("a {} x {} by {} x {} matrix product is too large for cuBLAS's 32-bit sizes (a side of {} > {}) [LimitExceeded]\n"
                        "  = help: route this parameter to an elementwise pipeline, or split it",
                        b.m, b.k, b.k, b.n, v, std::numeric_limits<int>::max()));
    const int m = int(cm.m), n = int(cm.n), k = int(cm.k), ld1 = int(cm.ld_first), ld2 = int(cm.ld_second), ldc = int(cm.ldc);
    const long long a_n = b.m * b.k, b_n = b.k * b.n;
    std::vector<const void*> A(b.A.begin(), b.A.end()), B(b.B.begin(), b.B.end());
    cudaDataType_t in_type = CUDA_R_32F;
    if (b.bf16) {  // operands rounded to bf16 into a workspace, f32 accumulation
      in_type = CUDA_R_16BF;
      auto* w = static_cast<unsigned short*>(work2_.get(size_t(count) * size_t(a_n + b_n) * 2));
      to_bf16(b.A, w, a_n, 1);
      to_bf16(b.B, w + count * a_n, b_n, 2);
      for (size_t i = 0; i < count; ++i) {
        A[i] = w + i * a_n;
        B[i] = w + count * a_n + i * b_n;
      }
    }
    if (count == 1) {
      CK(cublasGemmEx(blas, op1, op2, m, n, k, &one, B[0], in_type, ld1, A[0], in_type, ld2, &zero, b.C[0], CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                      CUBLAS_GEMM_DEFAULT));
    } else {
      std::vector<char> host(3 * count * sizeof(void*));
      std::memcpy(host.data(), B.data(), count * sizeof(void*));
      std::memcpy(host.data() + count * sizeof(void*), A.data(), count * sizeof(void*));
      std::memcpy(host.data() + 2 * count * sizeof(void*), b.C.data(), count * sizeof(void*));
      char* dev = stage(TableKey{&kGemmTables, 0, b.C[0]}, host);
      auto ptrs = reinterpret_cast<const void* const*>(dev);
      CK(cublasGemmBatchedEx(blas, op1, op2, m, n, k, &one, ptrs, in_type, ld1, ptrs + count, in_type, ld2, &zero,
                             const_cast<void* const*>(ptrs + 2 * count), CUDA_R_32F, ldc, int(count), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
    if (b.bf16) {
      std::vector<char> host(count * sizeof(float*));
      std::memcpy(host.data(), b.C.data(), host.size());
      float* const* ptrs = reinterpret_cast<float* const*>(stage(TableKey{&kRoundTables, 0, b.C[0]}, host));
      long long n = b.m * b.n;
      void* args[] = {&ptrs, &n};
      CK(cudaLaunchKernel(reinterpret_cast<const void*>(helpers_->kernels[kRoundBf16Many]), dim3(blocks_for(n), unsigned(count)), dim3(kBlock), args,
                          0, stream_));
    }
    return true;
  }

  // Eigh and InvRoot run whole in run_call (Linalg): no raw decomposition for the generic path
  bool eigh(long long, const std::vector<const float*>&, double*, double*) override { return false; }

  // A step's work goes on the caller's stream, after everything queued before (on whatever
  // stream: staging tables are reused in stream order), through an event: no host wait. The
  // handle is kept only until end_step, which returns to the default stream (valid forever)
  // made to wait for the step: a caller may destroy its stream right after the step.
  void set_stream(void* stream) override {
    DeviceScope on(ordinal_);
    auto s = static_cast<cudaStream_t>(stream);
    if (s != stream_) {
      CK(cudaEventRecord(queued_, stream_));
      CK(cudaStreamWaitEvent(s, queued_, 0));
      stream_ = s;
    }
  }
  void end_step() override {
    if (!stream_) return;
    DeviceScope on(ordinal_);
    CK(cudaEventRecord(queued_, stream_));
    CK(cudaStreamWaitEvent(nullptr, queued_, 0));
    stream_ = nullptr;
  }
  void sync() override {
    DeviceScope on(ordinal_);
    CK(cudaStreamSynchronize(stream_));
    if (linalg_) linalg_->check_earlier();
  }

 private:
  struct TableKey {
    const void* owner;
    size_t index;
    const void* first;
    bool operator<(const TableKey& o) const { return owner != o.owner ? owner < o.owner : index != o.index ? index < o.index : first < o.first; }
  };
  struct Table {
    Scratch dev;
    std::vector<char> held;  // what the device copy holds (its first `size` bytes)
    size_t size = 0;         // 0: nothing staged yet
  };

  // The device table for `key`, holding at least `bytes`; stable across launches with the key.
  Table& reserve(const TableKey& key, size_t bytes) {
    Table& t = tables_[key];
    if (bytes > t.dev.bytes) t.size = 0;
    t.dev.get(bytes);
    return t;
  }
  // Copies `host` into the table unless it already holds exactly that (steady-state steps
  // upload nothing).
  char* stage(Table& t, const std::vector<char>& host) {
    if (t.size != host.size() || std::memcmp(t.held.data(), host.data(), host.size()) != 0) {
      t.held.assign(host.begin(), host.end());
      t.size = host.size();
      send(t.dev.p, host.data(), host.size());
    }
    return static_cast<char*>(t.dev.p);
  }
  // An asynchronous copy to the device, from the next of a ring of pinned buffers (from pageable
  // memory cudaMemcpyAsync would copy synchronously). A buffer is reused once the copy from it
  // has left, so the host waits only when the device is 64 copies behind. (A table per key
  // with its own pinned mirror made the host wait at every change of contents: a batch of GEMMs
  // into a scratch output that several products of a step share, SOAP's rotations, changes its
  // pointer table each time; 6 waits a step on a small model, about 26 on GPT-2, seen on an H200.)
  void send(void* dst, const char* src, size_t bytes) {
    Upload& u = uploads_[next_upload_];
    next_upload_ = (next_upload_ + 1) % uploads_.size();
    if (!u.sent) {
      CK(cudaEventCreateWithFlags(&u.sent, cudaEventDisableTiming));
    } else {
      const cudaError_t q = cudaEventQuery(u.sent);
      if (q == cudaErrorNotReady) {
        (void)cudaGetLastError();  // (not an error: the copy is still queued)
        CK(cudaEventSynchronize(u.sent));
      } else {
        CK(q);
      }
    }
    u.mem.get(bytes);
    std::memcpy(u.mem.p, src, bytes);
    CK(cudaMemcpyAsync(dst, u.mem.p, bytes, cudaMemcpyHostToDevice, stream_));
    CK(cudaEventRecord(u.sent, stream_));
  }
  char* stage(const TableKey& key, const std::vector<char>& host) { return stage(reserve(key, host.size()), host); }

  // The partial-sums buffer of one tensor entry of one kernel (`floats` long): made and zeroed
  // at its first launch, kept (its counter is left at zero by every launch).
  float* partials_for(const TableKey& key, long long floats) {
    Scratch& s = partials_[key];
    const size_t bytes = size_t(floats) * sizeof(float);
    if (bytes > s.bytes) {
      s.get(bytes);
      CK(cudaMemsetAsync(s.p, 0, s.bytes, stream_));
    }
    return static_cast<float*>(s.p);
  }

  void to_bf16(const std::vector<const float*>& src, unsigned short* dst, long long n, size_t slot) {
    std::vector<char> host(src.size() * sizeof(float*));
    std::memcpy(host.data(), src.data(), host.size());
    const float* const* ptrs = reinterpret_cast<const float* const*>(stage(TableKey{&kBf16Tables, slot, src[0]}, host));
    void* args[] = {&ptrs, &dst, &n};
    CK(cudaLaunchKernel(reinterpret_cast<const void*>(helpers_->kernels[kToBf16Many]), dim3(blocks_for(n), unsigned(src.size())), dim3(kBlock), args,
                        0, stream_));
  }

  std::shared_ptr<CudaModule> load(const std::string& source, const std::vector<std::string>& symbols) {
    NvrtcOutput out = nvrtc_compile(source, arch_);
    if (!out.ok) throw Error(fmt::format("NVRTC {} could not compile the kernels for {}:\n{}", nvrtc_version(), arch_, out.log));
    auto m = std::make_shared<CudaModule>();
    m->from_cache = out.from_cache;
    CK(cudaLibraryLoadData(&m->lib, out.image.data(), nullptr, nullptr, 0, nullptr, nullptr, 0));
    for (const auto& s : symbols) {
      cudaKernel_t k = nullptr;
      if (cudaLibraryGetKernel(&k, m->lib, s.c_str()) != cudaSuccess) throw Error(fmt::format("kernel `{}` is missing from the compiled module", s));
      m->kernels.push_back(k);
    }
    return m;
  }

  int ordinal_;
  cudaDeviceProp props_{};
  std::string arch_;
  cudaStream_t stream_ = nullptr;        // the caller's during a step (set_stream .. end_step), else the default stream
  cudaEvent_t queued_ = nullptr;         // recorded where the work so far was queued, when the stream changes
  std::shared_ptr<LibraryHandles> lib_;  // shared with the device's other backends
  std::shared_ptr<CudaModule> helpers_;
  std::map<TableKey, Table> tables_;
  struct Upload {
    Pinned mem;
    cudaEvent_t sent = nullptr;  // recorded after the last copy from `mem`
  };
  std::array<Upload, 64> uploads_;  // the ring send() copies from
  size_t next_upload_ = 0;
  std::vector<char> staging_;  // a launch's table as built on the host (reused: no allocation per launch)
  std::map<TableKey, Scratch> partials_;
  Scratch work2_;                   // bf16 GEMM operands
  std::unique_ptr<Linalg> linalg_;  // its kernels and workspaces, made at the first library call
};

}  // namespace

}  // namespace opal::cuda

extern "C" __attribute__((visibility("default"))) int opal_cuda_backend_abi() { return opal::kBackendAbi; }

extern "C" __attribute__((visibility("default"))) opal::Backend* opal_cuda_backend_create(int ordinal, char* error, size_t error_size) {
  auto fail = [&](const std::string& msg) -> opal::Backend* {
    std::snprintf(error, error_size, "%s", msg.c_str());
    return nullptr;
  };
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess)
    return fail(
        fmt::format("{} ({}){}", cudaGetErrorString(e), cudaGetErrorName(e),
                    e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice ? "; is there an NVIDIA GPU and driver on this machine?" : ""));
  if (ordinal < 0 || ordinal >= n) return fail(fmt::format("there {} {} CUDA device{}", n == 1 ? "is" : "are", n, n == 1 ? "" : "s"));
  try {
    return new opal::cuda::CudaBackend(ordinal);
  } catch (const std::exception& ex) {
    return fail(ex.what());
  }
}

extern "C" __attribute__((visibility("default"))) int opal_cuda_pointer_device(const void* p, int* ordinal, char* error, size_t error_size) {
  cudaPointerAttributes a{};
  cudaError_t e = cudaPointerGetAttributes(&a, p);
  if (e != cudaSuccess) {
    cudaGetLastError();  // not sticky: clear it
    std::snprintf(error, error_size, "cannot tell which device %p is on: %s (%s)%s", p, cudaGetErrorString(e), cudaGetErrorName(e),
                  e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice ? "; is there an NVIDIA GPU and driver on this machine?" : "");
    return 0;
  }
  if (a.type != cudaMemoryTypeDevice && a.type != cudaMemoryTypeManaged) {
    std::snprintf(error, error_size, "%p is %s memory, not a CUDA device's", p, a.type == cudaMemoryTypeHost ? "pinned host" : "host");
    return 0;
  }
  *ordinal = a.device;
  return 1;
}
