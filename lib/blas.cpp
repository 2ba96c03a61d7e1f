#include <xtgrad/lib/blas.hpp>

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <type_traits>
#include <vector>

#include <cblas.h>
#include <fmt/core.h>

#ifdef XTGRAD_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#endif

#include <xtgrad/lib/error.hpp>
#include <xtgrad/lib/parallel.hpp>
#include <xtgrad/lib/vmath.hpp>

namespace xtgrad {

namespace {

std::atomic<GemmBackend> g_backend{GemmBackend::automatic};
thread_local std::vector<GemmCall>* t_calls = nullptr;

std::string dims(std::size_t r, std::size_t c, bool t) {
    return fmt::format("({} x {}){}", r, c, t ? "^T" : "");
}

// The m, n, k of op(A) op(B) into C after checking that they fit; false when there is nothing left to multiply
// (an empty C, or an empty inner dimension: then C = beta C is done here).
template <class MA, class MB>
bool prepare(const char* who, const MA& A, bool transA, const MB& B, bool transB, Mat C, float beta, std::size_t& m,
             std::size_t& n, std::size_t& k) {
    m = transA ? A.cols : A.rows;
    k = transA ? A.rows : A.cols;
    const std::size_t kb = transB ? B.cols : B.rows;
    n = transB ? B.rows : B.cols;
    if (k != kb || C.rows != m || C.cols != n) {
        throw ShapeError(fmt::format("{}: cannot multiply {} by {} into {}", who, dims(A.rows, A.cols, transA),
                                     dims(B.rows, B.cols, transB), dims(C.rows, C.cols, false)));
    }
    if (m == 0 || n == 0) return false;
    if (t_calls) {
        const Precision p = std::is_same_v<MA, ConstMat16> ? Precision::bf16 : Precision::fp32;
        t_calls->push_back({m, n, k, transA, transB, p, beta});
    }
    if (k == 0) {
        for (std::size_t i = 0; i < m; ++i)
            for (std::size_t j = 0; j < n; ++j) {
                float& c = C.data[i * C.ld + j];
                c = beta == 0.0f ? 0.0f : beta * c;
            }
        return false;
    }
    return true;
}

void sgemm(ConstMat A, bool transA, ConstMat B, bool transB, Mat C, std::size_t m, std::size_t n, std::size_t k,
           float alpha, float beta) {
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, A.data, static_cast<int>(A.ld),
                B.data, static_cast<int>(B.ld), beta, C.data, static_cast<int>(C.ld));
}

// A bf16 window widened to a packed fp32 copy (rows x cols, ld = cols) in `buf` (capacity kept).
ConstMat widen(ConstMat16 A, std::vector<float>& buf) {
    buf.resize(A.rows * A.cols);
    for (std::size_t r = 0; r < A.rows; ++r) vmath::from_bf16(A.data + r * A.ld, buf.data() + r * A.cols, A.cols);
    return {buf.data(), A.rows, A.cols, A.cols};
}

#ifdef XTGRAD_HAVE_DNNL

// oneDNN matmul primitives, one per product shape, made on first use and kept: a steady state creates none. Per
// thread (memory objects carry the data pointers of the call), so tapes on several threads never share one.
class Dnnl {
public:
    Dnnl() {
        ok_ = dnnl_engine_create(&engine_, dnnl_cpu, 0) == dnnl_success &&
              dnnl_stream_create(&stream_, engine_, dnnl_stream_default_flags) == dnnl_success;
    }
    ~Dnnl() {
        for (Entry& e : cache_) {
            for (dnnl_memory_t m : e.mem)
                if (m) dnnl_memory_destroy(m);
            if (e.prim) dnnl_primitive_destroy(e.prim);
        }
        if (stream_) dnnl_stream_destroy(stream_);
        if (engine_) dnnl_engine_destroy(engine_);
    }
    Dnnl(const Dnnl&) = delete;
    Dnnl& operator=(const Dnnl&) = delete;

    // C = alpha op(A) op(B) + beta C with operands of type dt; false when oneDNN cannot run it (then nothing changed).
    bool run(dnnl_data_type_t dt, const void* A, std::size_t lda, bool ta, const void* B, std::size_t ldb, bool tb,
             Mat C, std::size_t m, std::size_t n, std::size_t k, float alpha, float beta) {
        if (!ok_) return false;
        const Key key{dt, m, n, k, lda, ldb, C.ld, ta, tb, alpha, beta, omp_get_max_threads()};
        Entry* e = find(key);
        if (!e) e = create(key);
        if (!e->prim) return false;
        void* ptrs[3] = {const_cast<void*>(A), const_cast<void*>(B), C.data};
        for (int i = 0; i < 3; ++i)
            if (dnnl_memory_set_data_handle(e->mem[i], ptrs[i]) != dnnl_success) return false;
        const dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, e->mem[0]}, {DNNL_ARG_WEIGHTS, e->mem[1]}, {DNNL_ARG_DST, e->mem[2]}};
        return dnnl_primitive_execute(e->prim, stream_, 3, args) == dnnl_success &&
               dnnl_stream_wait(stream_) == dnnl_success;
    }

    // The implementation oneDNN picked for a product (e.g. "brg:avx512_core_amx_bf16"), or "" if none.
    std::string kernel(dnnl_data_type_t dt, std::size_t m, std::size_t n, std::size_t k) {
        if (!ok_) return "";
        const Key key{dt, m, n, k, k, k, n, false, true, 1.0f, 0.0f, omp_get_max_threads()};
        Entry* e = find(key);
        if (!e) e = create(key);
        return e->impl;
    }

    static Dnnl& here() {
        thread_local Dnnl d;
        return d;
    }

private:
    struct Key {
        dnnl_data_type_t dt;
        std::size_t m, n, k, lda, ldb, ldc;
        bool ta, tb;
        float alpha, beta;
        int threads;
        bool operator==(const Key& o) const {
            return dt == o.dt && m == o.m && n == o.n && k == o.k && lda == o.lda && ldb == o.ldb && ldc == o.ldc &&
                   ta == o.ta && tb == o.tb && alpha == o.alpha && beta == o.beta && threads == o.threads;
        }
    };
    struct Entry {
        Key key;
        dnnl_primitive_t prim = nullptr;  // null: oneDNN has no implementation for it
        dnnl_memory_t mem[3] = {nullptr, nullptr, nullptr};
        std::string impl;
    };

    Entry* find(const Key& key) {
        for (Entry& e : cache_)
            if (e.key == key) return &e;
        return nullptr;
    }

    Entry* create(const Key& key) {
        cache_.emplace_back();
        Entry& e = cache_.back();
        e.key = key;
        const auto d = [](std::size_t v) { return static_cast<dnnl_dim_t>(v); };
        const dnnl_dims_t a_dims = {d(key.m), d(key.k)}, b_dims = {d(key.k), d(key.n)}, c_dims = {d(key.m), d(key.n)};
        const dnnl_dims_t a_str = {key.ta ? 1 : d(key.lda), key.ta ? d(key.lda) : 1};
        const dnnl_dims_t b_str = {key.tb ? 1 : d(key.ldb), key.tb ? d(key.ldb) : 1};
        const dnnl_dims_t c_str = {d(key.ldc), 1};
        dnnl_memory_desc_t a_md, b_md, c_md;
        dnnl_matmul_desc_t desc;
        dnnl_primitive_attr_t attr = nullptr;
        dnnl_post_ops_t post = nullptr;
        dnnl_primitive_desc_t pd = nullptr;
        bool good = dnnl_memory_desc_init_by_strides(&a_md, 2, a_dims, key.dt, a_str) == dnnl_success &&
                    dnnl_memory_desc_init_by_strides(&b_md, 2, b_dims, key.dt, b_str) == dnnl_success &&
                    dnnl_memory_desc_init_by_strides(&c_md, 2, c_dims, dnnl_f32, c_str) == dnnl_success &&
                    dnnl_matmul_desc_init(&desc, &a_md, &b_md, nullptr, &c_md) == dnnl_success &&
                    dnnl_primitive_attr_create(&attr) == dnnl_success;
        if (good && key.alpha != 1.0f) good = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &key.alpha) == dnnl_success;
        if (good && key.beta != 0.0f) {
            good = dnnl_post_ops_create(&post) == dnnl_success && dnnl_post_ops_append_sum(post, key.beta) == dnnl_success &&
                   dnnl_primitive_attr_set_post_ops(attr, post) == dnnl_success;
        }
        good = good && dnnl_primitive_desc_create(&pd, &desc, attr, engine_, nullptr) == dnnl_success;
        if (good) {
            const char* impl = nullptr;
            if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl) e.impl = impl;
            good = dnnl_primitive_create(&e.prim, pd) == dnnl_success;
        }
        const dnnl_memory_desc_t* mds[3] = {&a_md, &b_md, &c_md};
        for (int i = 0; good && i < 3; ++i)
            good = dnnl_memory_create(&e.mem[i], mds[i], engine_, DNNL_MEMORY_NONE) == dnnl_success;
        if (pd) dnnl_primitive_desc_destroy(pd);
        if (post) dnnl_post_ops_destroy(post);
        if (attr) dnnl_primitive_attr_destroy(attr);
        if (!good) {
            for (dnnl_memory_t& m : e.mem)
                if (m) dnnl_memory_destroy(m), m = nullptr;
            if (e.prim) dnnl_primitive_destroy(e.prim), e.prim = nullptr;
        }
        return &e;
    }

    bool ok_ = false;
    dnnl_engine_t engine_ = nullptr;
    dnnl_stream_t stream_ = nullptr;
    std::vector<Entry> cache_;
};

bool use_dnnl_f32(std::size_t m, std::size_t n, std::size_t k) {
    (void)m, (void)n, (void)k;
    return g_backend.load(std::memory_order_relaxed) == GemmBackend::onednn;
}

#endif  // XTGRAD_HAVE_DNNL

}  // namespace

void gemm(const char* who, ConstMat A, bool transA, ConstMat B, bool transB, Mat C, float alpha, float beta) {
    std::size_t m, n, k;
    if (!prepare(who, A, transA, B, transB, C, beta, m, n, k)) return;
#ifdef XTGRAD_HAVE_DNNL
    if (use_dnnl_f32(m, n, k) &&
        Dnnl::here().run(dnnl_f32, A.data, A.ld, transA, B.data, B.ld, transB, C, m, n, k, alpha, beta))
        return;
#endif
    sgemm(A, transA, B, transB, C, m, n, k, alpha, beta);
}

void gemm(const char* who, ConstMat16 A, bool transA, ConstMat16 B, bool transB, Mat C, float alpha, float beta) {
    std::size_t m, n, k;
    if (!prepare(who, A, transA, B, transB, C, beta, m, n, k)) return;
#ifdef XTGRAD_HAVE_DNNL
    if (g_backend.load(std::memory_order_relaxed) != GemmBackend::openblas &&
        Dnnl::here().run(dnnl_bf16, A.data, A.ld, transA, B.data, B.ld, transB, C, m, n, k, alpha, beta))
        return;
#endif
    thread_local std::vector<float> wa, wb;  // capacity kept: no allocation in steady state
    sgemm(widen(A, wa), transA, widen(B, wb), transB, C, m, n, k, alpha, beta);
}

const char* precision_name(Precision p) { return p == Precision::bf16 ? "bf16" : "fp32"; }

void record_gemm_calls(std::vector<GemmCall>* calls) { t_calls = calls; }

void set_gemm_backend(GemmBackend b) {
    if (b == GemmBackend::onednn && !onednn_built())
        throw ConfigError("gemm backend onednn: xtgrad was built without oneDNN (install libdnnl-dev, -Ddnnl=enabled)");
    g_backend.store(b);
}

GemmBackend gemm_backend() { return g_backend.load(); }

#ifdef XTGRAD_HAVE_DNNL
bool onednn_built() { return true; }

bool bf16_native() {
    const unsigned isa = static_cast<unsigned>(dnnl_get_effective_cpu_isa());
    const unsigned want = static_cast<unsigned>(dnnl_cpu_isa_avx512_core_bf16);
    return (isa & want) == want;  // avx512_core_bf16 or avx512_core_amx
}

std::string gemm_backend_info() {
    const dnnl_version_t* v = dnnl_version();
    Dnnl& d = Dnnl::here();
    return fmt::format("OpenBLAS ({} threads) + oneDNN {}.{}.{} ({} threads; fp32 {}, bf16 {}{})", blas_threads(),
                       v->major, v->minor, v->patch, omp_get_max_threads(), d.kernel(dnnl_f32, 64, 64, 64),
                       d.kernel(dnnl_bf16, 64, 64, 64), bf16_native() ? "" : ": no native bf16, emulated");
}

void set_blas_threads(int n) {
    if (n < 1) throw ConfigError(fmt::format("BLAS thread count must be >= 1 (got {})", n));
    openblas_set_num_threads(n);
    omp_set_num_threads(n);
    set_parallel_threads(static_cast<std::size_t>(n));
}
#else
bool onednn_built() { return false; }
bool bf16_native() { return false; }
std::string gemm_backend_info() {
    return fmt::format("OpenBLAS ({} threads); no oneDNN: bf16 products emulated", blas_threads());
}

void set_blas_threads(int n) {
    if (n < 1) throw ConfigError(fmt::format("BLAS thread count must be >= 1 (got {})", n));
    openblas_set_num_threads(n);
    set_parallel_threads(static_cast<std::size_t>(n));
}
#endif

int blas_threads() { return openblas_get_num_threads(); }

void prefer_passive_openmp(int argc, char** argv) {
#ifdef XTGRAD_HAVE_DNNL
    if (argc < 1 || !argv || std::getenv("OMP_WAIT_POLICY")) return;
    // Only the process's own command line is re-executed: an argv made up by a caller would run something else.
    std::string own, given;
    if (FILE* f = std::fopen("/proc/self/cmdline", "rb")) {
        char buf[4096];
        for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) own.append(buf, n);
        std::fclose(f);
    }
    for (int i = 0; i < argc; ++i) {
        if (!argv[i]) return;
        given.append(argv[i]).push_back('\0');
    }
    if (own != given || setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
    std::fflush(stdout);
    std::fflush(stderr);
    execv("/proc/self/exe", argv);  // returns only on failure: then run on, spinning threads and all
    unsetenv("OMP_WAIT_POLICY");
#else
    (void)argc, (void)argv;
#endif
}

}  // namespace xtgrad
