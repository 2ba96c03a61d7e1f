// Every op of xtgrad: a math line, a shape line, the forward pass, and its backward rule right below.
// Forward assigns the node's value; backward ACCUMULATES into the inputs' gradients (an input may be used
// twice). Gradients start uninitialised: the first rule to reach a node assigns (acc_raw says so), later
// ones add.

#include <xtgrad/tape/ops.hpp>

#include <algorithm>
#include <cmath>

#include <fmt/core.h>

#include <xtgrad/lib/blas.hpp>
#include <xtgrad/lib/error.hpp>
#include <xtgrad/lib/vmath.hpp>

namespace xtgrad {

namespace {

// ---- helpers shared by the rules

Tape& tape_of(const char* op, Var v) {
    if (!v.tape) throw Error(fmt::format("{}: empty Var (not produced by any tape)", op));
    return *v.tape;
}

const Array& val(Tape& t, Var v, const char* op) { return t.node(v, op).val(); }

// The gradient buffer of input node i for accumulation, zero-filled on first touch; null if it needs none.
Array* acc_buf(Tape& t, std::uint32_t i) {
    Node& n = t.at(i);
    if (!n.requires_grad) return nullptr;
    Array& g = n.gradbuf();
    if (!n.grad_live) {
        ensure_shape(g, shape_of(n.val()));
        g.fill(0.0f);
        n.grad_live = true;
    }
    return &g;
}

// Like acc_buf, but a fresh buffer is left unfilled and `fresh` is set: the caller assigns instead of adding.
Array* acc_raw(Tape& t, std::uint32_t i, bool& fresh) {
    Node& n = t.at(i);
    fresh = false;
    if (!n.requires_grad) return nullptr;
    Array& g = n.gradbuf();
    if (!n.grad_live) {
        ensure_shape(g, shape_of(n.val()));
        n.grad_live = true;
        fresh = true;
    }
    return &g;
}

// G (+)= f(k) for k over the buffer: the common shape of an elementwise rule.
template <class F>
void acc_map(Tape& t, std::uint32_t i, F f) {
    bool fresh;
    Array* G = acc_raw(t, i, fresh);
    if (!G) return;
    float* g = G->data();
    const std::size_t n = G->size();
    if (fresh)
        for (std::size_t k = 0; k < n; ++k) g[k] = f(k);
    else
        for (std::size_t k = 0; k < n; ++k) g[k] += f(k);
}

// G (+)= op(A) op(B) with sgemm (beta = 0 on a fresh buffer, 1 otherwise).
void acc_gemm(Tape& t, std::uint32_t i, const char* who, ConstMat A, bool ta, ConstMat B, bool tb) {
    bool fresh;
    Array* G = acc_raw(t, i, fresh);
    if (G) gemm(who, A, ta, B, tb, mat(*G), 1.0f, fresh ? 0.0f : 1.0f);
}

// dW (+)= g^T x for the weight of an affine or matmul_t. A parameter's product over few rows (a recurrent step)
// is deferred to the end of the pass, where the tape stacks all of that parameter's rows into one sgemm.
void acc_weight_grad(Tape& t, std::uint32_t i, const char* who, const Array& g, const Array& x) {
    Node& n = t.at(i);
    if (!n.requires_grad) return;
    constexpr std::size_t kSmall = 64;
    if (n.ext_grad && g.shape()[0] <= kSmall) {
        t.defer_weight_grad(n.ext_grad, &g, &x);
        return;
    }
    acc_gemm(t, i, who, cmat(g), true, cmat(x), false);
}

// How to read a possibly broadcast operand at output position (r, c).
struct Bcast {
    std::size_t rs, cs;  // row and column strides, 0 along a broadcast dimension
    explicit Bcast(const Array& a)
        : rs(a.shape()[0] == 1 ? 0 : a.shape()[1]), cs(a.shape()[1] == 1 ? 0 : 1) {}
    std::size_t at(std::size_t r, std::size_t c) const { return r * rs + c * cs; }
};

// The output shape of an elementwise op on a and b; each dim must match or be 1 on one side.
Shape broadcast_shape(const char* op, const Array& a, const Array& b) {
    Shape s{};
    for (int d = 0; d < 2; ++d) {
        const std::size_t x = a.shape()[d], y = b.shape()[d];
        if (x != y && x != 1 && y != 1) {
            throw ShapeError(fmt::format("{}: shapes {} and {} do not broadcast (dim {} is {} vs {})", op,
                                         shape_str(a), shape_str(b), d, x, y));
        }
        s[d] = x == 1 ? y : x;
    }
    return s;
}

// y[r, c] = f(a[.], b[.]) with broadcasting.
template <class F>
void binary_forward(const Array& a, const Array& b, Array& y, F f) {
    const std::size_t R = y.shape()[0], C = y.shape()[1];
    const float *pa = a.data(), *pb = b.data();
    float* py = y.data();
    if (a.size() == y.size() && b.size() == y.size()) {
        for (std::size_t k = 0; k < R * C; ++k) py[k] = f(pa[k], pb[k]);
        return;
    }
    const Bcast ba(a), bb(b);
    for (std::size_t r = 0; r < R; ++r)
        for (std::size_t c = 0; c < C; ++c) py[r * C + c] = f(pa[ba.at(r, c)], pb[bb.at(r, c)]);
}

// Gradient of one operand of a broadcasting op: G[.] += f(g[r, c], other[.]), summed over broadcast dims.
template <class F>
void binary_backward(Tape& t, std::uint32_t i, const Array& g, const Array& other, F f) {
    const Node& n = t.at(i);
    if (!n.requires_grad) return;
    const Array& self = n.val();
    const float *pg = g.data(), *po = other.data();
    if (self.size() == g.size() && other.size() == g.size()) {
        acc_map(t, i, [&](std::size_t k) { return f(pg[k], po[k]); });
        return;
    }
    float* G = acc_buf(t, i)->data();
    const std::size_t R = g.shape()[0], C = g.shape()[1];
    const Bcast bs(self), bo(other);
    for (std::size_t r = 0; r < R; ++r)
        for (std::size_t c = 0; c < C; ++c) G[bs.at(r, c)] += f(pg[r * C + c], po[bo.at(r, c)]);
}

void check_range(const char* op, const char* what, std::size_t lo, std::size_t hi, std::size_t n,
                 const Array& x) {
    if (!(lo < hi && hi <= n)) {
        throw IndexError(fmt::format("{}: {} range [{}, {}) is empty or outside [0, {}) of {}", op, what, lo, hi,
                                     n, shape_str(x)));
    }
}

// y = a * x + b: the one rule behind scale, add_scalar and neg.
Var linear_scalar(const char* op, Var x, float a, float b) {
    Tape& t = tape_of(op, x);
    const Array& X = val(t, x, op);
    Node& y = t.record(op, {x}, [](Tape& t, Node& y) {
        const float* g = y.grad.data();
        const float a = y.f0;
        acc_map(t, y.in[0], [&](std::size_t k) { return a * g[k]; });
    });
    y.f0 = a;
    ensure_shape(y.value, shape_of(X));
    const float* px = X.data();
    float* py = y.value.data();
    for (std::size_t k = 0; k < X.size(); ++k) py[k] = a * px[k] + b;
    return t.var(y);
}

// y = f(x) elementwise, with a vectorised kernel; `rule` is the backward rule reading x, y and g.
Var unary(const char* op, Var x, void (*kernel)(const float*, float*, std::size_t), BackwardFn rule) {
    Tape& t = tape_of(op, x);
    const Array& X = val(t, x, op);
    Node& y = t.record(op, {x}, rule);
    ensure_shape(y.value, shape_of(X));
    kernel(X.data(), y.value.data(), X.size());
    return t.var(y);
}

}  // namespace

// ============================================================ elementwise

// y = a + b                       a, b: broadcastable -> broadcast shape
Var add(Var a, Var b) {
    Tape& t = tape_of("add", a);
    const Array &A = val(t, a, "add"), &B = val(t, b, "add");
    const Shape s = broadcast_shape("add", A, B);
    Node& y = t.record("add", {a, b}, [](Tape& t, Node& y) {
        const Array &A = t.at(y.in[0]).val(), &B = t.at(y.in[1]).val();
        binary_backward(t, y.in[0], y.grad, B, [](float g, float) { return g; });
        binary_backward(t, y.in[1], y.grad, A, [](float g, float) { return g; });
    });
    ensure_shape(y.value, s);
    binary_forward(A, B, y.value, [](float p, float q) { return p + q; });
    return t.var(y);
}

// y = a - b                       a, b: broadcastable -> broadcast shape
Var sub(Var a, Var b) {
    Tape& t = tape_of("sub", a);
    const Array &A = val(t, a, "sub"), &B = val(t, b, "sub");
    const Shape s = broadcast_shape("sub", A, B);
    Node& y = t.record("sub", {a, b}, [](Tape& t, Node& y) {
        const Array &A = t.at(y.in[0]).val(), &B = t.at(y.in[1]).val();
        binary_backward(t, y.in[0], y.grad, B, [](float g, float) { return g; });
        binary_backward(t, y.in[1], y.grad, A, [](float g, float) { return -g; });
    });
    ensure_shape(y.value, s);
    binary_forward(A, B, y.value, [](float p, float q) { return p - q; });
    return t.var(y);
}

// y = a * b     da += g * b, db += g * a        a, b: broadcastable -> broadcast shape
Var mul(Var a, Var b) {
    Tape& t = tape_of("mul", a);
    const Array &A = val(t, a, "mul"), &B = val(t, b, "mul");
    const Shape s = broadcast_shape("mul", A, B);
    Node& y = t.record("mul", {a, b}, [](Tape& t, Node& y) {
        const Array &A = t.at(y.in[0]).val(), &B = t.at(y.in[1]).val();
        binary_backward(t, y.in[0], y.grad, B, [](float g, float q) { return g * q; });
        binary_backward(t, y.in[1], y.grad, A, [](float g, float p) { return g * p; });
    });
    ensure_shape(y.value, s);
    binary_forward(A, B, y.value, [](float p, float q) { return p * q; });
    return t.var(y);
}

// y = c x      dx += c g
Var scale(Var x, float c) { return linear_scalar("scale", x, c, 0.0f); }
// y = x + c    dx += g
Var add_scalar(Var x, float c) { return linear_scalar("add_scalar", x, 1.0f, c); }
// y = -x       dx -= g
Var neg(Var x) { return linear_scalar("neg", x, -1.0f, 0.0f); }

// ============================================================ matrix products

// y = a b      da += g b^T, db += a^T g          a: (M x K), b: (K x N) -> (M x N)
Var matmul(Var a, Var b) {
    Tape& t = tape_of("matmul", a);
    const Array &A = val(t, a, "matmul"), &B = val(t, b, "matmul");
    Node& y = t.record("matmul", {a, b}, [](Tape& t, Node& y) {
        const Array &A = t.at(y.in[0]).val(), &B = t.at(y.in[1]).val();
        acc_gemm(t, y.in[0], "matmul backward", cmat(y.grad), false, cmat(B), true);
        acc_gemm(t, y.in[1], "matmul backward", cmat(A), true, cmat(y.grad), false);
    });
    if (A.shape()[1] != B.shape()[0])
        throw ShapeError(fmt::format("matmul: cannot multiply {} by {}", shape_str(A), shape_str(B)));
    ensure_shape(y.value, {A.shape()[0], B.shape()[1]});
    gemm("matmul", A, false, B, false, y.value);
    return t.var(y);
}

// y = a b^T    da += g b, db += g^T a            a: (M x K), b: (N x K) -> (M x N)
Var matmul_t(Var a, Var b) {
    Tape& t = tape_of("matmul_t", a);
    const Array &A = val(t, a, "matmul_t"), &B = val(t, b, "matmul_t");
    Node& y = t.record("matmul_t", {a, b}, [](Tape& t, Node& y) {
        const Array &A = t.at(y.in[0]).val(), &B = t.at(y.in[1]).val();
        acc_gemm(t, y.in[0], "matmul_t backward", cmat(y.grad), false, cmat(B), false);
        acc_weight_grad(t, y.in[1], "matmul_t backward", y.grad, A);
    });
    if (A.shape()[1] != B.shape()[1])
        throw ShapeError(fmt::format("matmul_t: cannot multiply {} by the transpose of {}", shape_str(A),
                                     shape_str(B)));
    ensure_shape(y.value, {A.shape()[0], B.shape()[0]});
    gemm("matmul_t", A, false, B, true, y.value);
    return t.var(y);
}

// y = x W^T + b    dx += g W, dW += g^T x, db += column sums of g
// x: (M x K), W: (N x K), b: (1 x N) -> (M x N)
Var affine(Var x, Var W, Var b) {
    Tape& t = tape_of("affine", x);
    const Array &X = val(t, x, "affine"), &Wv = val(t, W, "affine"), &Bv = val(t, b, "affine");
    const std::size_t M = X.shape()[0], K = X.shape()[1], N = Wv.shape()[0];
    if (Wv.shape()[1] != K || Bv.shape()[0] != 1 || Bv.shape()[1] != N) {
        throw ShapeError(fmt::format("affine: x {} W {} b {} do not fit y = x W^T + b (want W (N x {}), b (1 x N))",
                                     shape_str(X), shape_str(Wv), shape_str(Bv), K));
    }
    Node& y = t.record("affine", {x, W, b}, [](Tape& t, Node& y) {
        const Array &X = t.at(y.in[0]).val(), &Wv = t.at(y.in[1]).val();
        acc_gemm(t, y.in[0], "affine backward", cmat(y.grad), false, cmat(Wv), false);
        acc_weight_grad(t, y.in[1], "affine backward", y.grad, X);
        if (Array* gb = acc_buf(t, y.in[2])) {
            const std::size_t M = y.grad.shape()[0], N = y.grad.shape()[1];
            float* pb = gb->data();
            const float* g = y.grad.data();
            for (std::size_t r = 0; r < M; ++r)
                for (std::size_t c = 0; c < N; ++c) pb[c] += g[r * N + c];
        }
    });
    ensure_shape(y.value, {M, N});
    float* py = y.value.data();
    for (std::size_t r = 0; r < M; ++r) std::copy(Bv.data(), Bv.data() + N, py + r * N);
    gemm("affine", X, false, Wv, true, y.value, 1.0f, 1.0f);
    return t.var(y);
}

// ============================================================ nonlinearities

// y = sigmoid(x)     dx += g y (1 - y)
Var sigmoid(Var x) {
    return unary("sigmoid", x, vmath::sigmoid, [](Tape& t, Node& y) {
        const float *g = y.grad.data(), *v = y.value.data();
        acc_map(t, y.in[0], [&](std::size_t k) { return g[k] * v[k] * (1.0f - v[k]); });
    });
}

// y = tanh(x)        dx += g (1 - y^2)
Var tanh(Var x) {
    return unary("tanh", x, vmath::tanh, [](Tape& t, Node& y) {
        const float *g = y.grad.data(), *v = y.value.data();
        acc_map(t, y.in[0], [&](std::size_t k) { return g[k] * (1.0f - v[k] * v[k]); });
    });
}

namespace {
void relu_kernel(const float* x, float* y, std::size_t n) {
    for (std::size_t k = 0; k < n; ++k) y[k] = x[k] > 0.0f ? x[k] : 0.0f;
}
}  // namespace

// y = max(x, 0)      dx += g [y > 0]
Var relu(Var x) {
    return unary("relu", x, relu_kernel, [](Tape& t, Node& y) {
        const float *g = y.grad.data(), *v = y.value.data();
        acc_map(t, y.in[0], [&](std::size_t k) { return v[k] > 0.0f ? g[k] : 0.0f; });
    });
}

// y = exp(x)         dx += g y
Var exp(Var x) {
    return unary("exp", x, vmath::exp, [](Tape& t, Node& y) {
        const float *g = y.grad.data(), *v = y.value.data();
        acc_map(t, y.in[0], [&](std::size_t k) { return g[k] * v[k]; });
    });
}

// y = log(x)         dx += g / x
Var log(Var x) {
    return unary("log", x, vmath::log, [](Tape& t, Node& y) {
        const float* g = y.grad.data();
        const float* v = t.at(y.in[0]).val().data();
        acc_map(t, y.in[0], [&](std::size_t k) { return g[k] / v[k]; });
    });
}

// ============================================================ reductions

namespace {
Var reduce_all(const char* op, Var x, bool average) {
    Tape& t = tape_of(op, x);
    const Array& X = val(t, x, op);
    Node& y = t.record(op, {x}, [](Tape& t, Node& y) {
        const float g = y.grad(0, 0) * y.f0;
        acc_map(t, y.in[0], [&](std::size_t) { return g; });
    });
    double s = 0.0;  // double accumulation: finite differences of a sum stay accurate
    for (float v : X) s += v;
    y.f0 = average ? 1.0f / static_cast<float>(std::max<std::size_t>(X.size(), 1)) : 1.0f;
    ensure_shape(y.value, {1, 1});
    y.value(0, 0) = static_cast<float>(s * y.f0);
    return t.var(y);
}
}  // namespace

// y = sum_ij x_ij    dx_ij += g                     -> (1 x 1)
Var sum(Var x) { return reduce_all("sum", x, false); }
// y = sum_ij x_ij / n    dx_ij += g / n             -> (1 x 1)
Var mean(Var x) { return reduce_all("mean", x, true); }

// ============================================================ slicing and joining

// y = x[:, c0:c1]    dx[:, c0:c1] += g               x: (M x N) -> (M x (c1 - c0))
Var cols(Var x, std::size_t c0, std::size_t c1) {
    Tape& t = tape_of("cols", x);
    const Array& X = val(t, x, "cols");
    const std::size_t M = X.shape()[0], N = X.shape()[1];
    check_range("cols", "column", c0, c1, N, X);
    Node& y = t.record("cols", {x}, [](Tape& t, Node& y) {
        Array* G = acc_buf(t, y.in[0]);
        if (!G) return;
        const std::size_t M = y.grad.shape()[0], w = y.grad.shape()[1], N = G->shape()[1];
        for (std::size_t r = 0; r < M; ++r) {
            float* d = G->data() + r * N + y.i0;
            const float* s = y.grad.data() + r * w;
            for (std::size_t c = 0; c < w; ++c) d[c] += s[c];
        }
    });
    y.i0 = static_cast<long>(c0);
    ensure_shape(y.value, {M, c1 - c0});
    for (std::size_t r = 0; r < M; ++r)
        std::copy(X.data() + r * N + c0, X.data() + r * N + c1, y.value.data() + r * (c1 - c0));
    return t.var(y);
}

// y = x[r0:r1, :]    dx[r0:r1, :] += g               x: (M x N) -> ((r1 - r0) x N)
Var rows(Var x, std::size_t r0, std::size_t r1) {
    Tape& t = tape_of("rows", x);
    const Array& X = val(t, x, "rows");
    const std::size_t M = X.shape()[0], N = X.shape()[1];
    check_range("rows", "row", r0, r1, M, X);
    Node& y = t.record("rows", {x}, [](Tape& t, Node& y) {
        Array* G = acc_buf(t, y.in[0]);
        if (!G) return;
        float* d = G->data() + y.i0 * G->shape()[1];
        const float* s = y.grad.data();
        for (std::size_t k = 0; k < y.grad.size(); ++k) d[k] += s[k];
    });
    y.i0 = static_cast<long>(r0);
    ensure_shape(y.value, {r1 - r0, N});
    std::copy(X.data() + r0 * N, X.data() + r1 * N, y.value.data());
    return t.var(y);
}

// y = [x0 x1 ...]    dx_k += g[:, block k]           x_k: (M x N_k) -> (M x sum N_k)
Var concat_cols(const std::vector<Var>& xs) {
    if (xs.empty()) throw ShapeError("concat_cols: no inputs");
    Tape& t = tape_of("concat_cols", xs[0]);
    const std::size_t M = val(t, xs[0], "concat_cols").shape()[0];
    std::size_t N = 0;
    for (std::size_t k = 0; k < xs.size(); ++k) {
        const Array& X = val(t, xs[k], "concat_cols");
        if (X.shape()[0] != M)
            throw ShapeError(fmt::format("concat_cols: input {} is {} but input 0 has {} rows", k, shape_str(X), M));
        N += X.shape()[1];
    }
    Node& y = t.record("concat_cols", xs, [](Tape& t, Node& y) {
        const std::size_t M = y.grad.shape()[0], N = y.grad.shape()[1];
        std::size_t c0 = 0;
        for (std::uint32_t i : y.in) {
            const std::size_t w = t.at(i).val().shape()[1];
            if (Array* G = acc_buf(t, i)) {
                for (std::size_t r = 0; r < M; ++r)
                    for (std::size_t c = 0; c < w; ++c) (*G).data()[r * w + c] += y.grad.data()[r * N + c0 + c];
            }
            c0 += w;
        }
    });
    ensure_shape(y.value, {M, N});
    std::size_t c0 = 0;
    for (const Var& v : xs) {
        const Array& X = val(t, v, "concat_cols");
        const std::size_t w = X.shape()[1];
        for (std::size_t r = 0; r < M; ++r)
            std::copy(X.data() + r * w, X.data() + (r + 1) * w, y.value.data() + r * N + c0);
        c0 += w;
    }
    return t.var(y);
}

// y = [x0; x1; ...]  dx_k += g[block k, :]           x_k: (M_k x N) -> (sum M_k x N)
Var concat_rows(const std::vector<Var>& xs) {
    if (xs.empty()) throw ShapeError("concat_rows: no inputs");
    Tape& t = tape_of("concat_rows", xs[0]);
    const std::size_t N = val(t, xs[0], "concat_rows").shape()[1];
    std::size_t M = 0;
    for (std::size_t k = 0; k < xs.size(); ++k) {
        const Array& X = val(t, xs[k], "concat_rows");
        if (X.shape()[1] != N)
            throw ShapeError(fmt::format("concat_rows: input {} is {} but input 0 has {} cols", k, shape_str(X), N));
        M += X.shape()[0];
    }
    Node& y = t.record("concat_rows", xs, [](Tape& t, Node& y) {
        const float* g = y.grad.data();
        for (std::uint32_t i : y.in) {
            const std::size_t n = t.at(i).val().size();
            if (Array* G = acc_buf(t, i))
                for (std::size_t k = 0; k < n; ++k) G->data()[k] += g[k];
            g += n;
        }
    });
    ensure_shape(y.value, {M, N});
    float* out = y.value.data();
    for (const Var& v : xs) out = std::copy(val(t, v, "concat_rows").begin(), val(t, v, "concat_rows").end(), out);
    return t.var(y);
}

// ============================================================ embedding lookup

// y[i, :] = table[ids[i], :]    dtable[ids[i], :] += g[i, :]     table: (V x E) -> (n x E)
Var gather(Var table, const Ids& ids) {
    Tape& t = tape_of("gather", table);
    const Array& T = val(t, table, "gather");
    const std::size_t V = T.shape()[0], E = T.shape()[1];
    for (std::size_t i = 0; i < ids.size(); ++i) {
        if (ids[i] < 0 || static_cast<std::size_t>(ids[i]) >= V)
            throw IndexError(fmt::format("gather: id {} at position {} is outside [0, {}) of table {}", ids[i], i, V,
                                         shape_str(T)));
    }
    Node& y = t.record("gather", {table}, [](Tape& t, Node& y) {
        Array* G = acc_buf(t, y.in[0]);
        if (!G) return;
        const std::size_t E = y.grad.shape()[1];
        for (std::size_t i = 0; i < y.ids.size(); ++i) {
            float* d = G->data() + static_cast<std::size_t>(y.ids[i]) * E;
            const float* s = y.grad.data() + i * E;
            for (std::size_t c = 0; c < E; ++c) d[c] += s[c];
        }
    });
    y.ids.assign(ids.begin(), ids.end());
    ensure_shape(y.value, {ids.size(), E});
    for (std::size_t i = 0; i < ids.size(); ++i)
        std::copy(T.data() + ids[i] * E, T.data() + (ids[i] + 1) * E, y.value.data() + i * E);
    return t.var(y);
}

// ============================================================ regularisation

namespace {
void check_rate(const char* op, float p) {
    if (!(p >= 0.0f && p < 1.0f)) throw ConfigError(fmt::format("{}: rate must be in [0, 1), got {}", op, p));
}
void fill_mask(Array& m, float p, Rng& rng) {
    const float keep = 1.0f / (1.0f - p);
    // rng.uniform() < p, compared on the 24 random bits themselves
    const auto threshold = static_cast<std::uint64_t>(std::ceil(static_cast<double>(p) * 0x1.0p24));
    float* d = m.data();
    for (std::size_t k = 0; k < m.size(); ++k) d[k] = (rng.next_u64() >> 40) < threshold ? 0.0f : keep;
}
}  // namespace

// y = x * m, m_ij in {0, 1/(1-p)} drawn from rng    dx += g * m
Var dropout(Var x, float p, Rng& rng) {
    check_rate("dropout", p);
    if (p == 0.0f) return x;
    Tape& t = tape_of("dropout", x);
    const Array& X = val(t, x, "dropout");
    Node& y = t.record("dropout", {x}, [](Tape& t, Node& y) {
        const float *g = y.grad.data(), *m = y.aux.data();
        acc_map(t, y.in[0], [&](std::size_t k) { return g[k] * m[k]; });
    });
    ensure_shape(y.aux, shape_of(X));
    fill_mask(y.aux, p, rng);
    ensure_shape(y.value, shape_of(X));
    for (std::size_t k = 0; k < X.size(); ++k) y.value.data()[k] = X.data()[k] * y.aux.data()[k];
    return t.var(y);
}

// m_ij in {0, 1/(1-p)} drawn from rng: a constant, to share one mask among several values
Var dropout_mask(Tape& t, Shape s, float p, Rng& rng) {
    check_rate("dropout_mask", p);
    Var m = t.constant(s, 1.0f);
    if (p > 0.0f) fill_mask(t.node(m).value, p, rng);
    return m;
}

// ============================================================ softmax and loss

// y_ij = x_ij - log sum_k exp(x_ik)     dx_ij += g_ij - exp(y_ij) sum_k g_ik      x: (M x N) -> (M x N)
Var log_softmax(Var x) {
    Tape& t = tape_of("log_softmax", x);
    const Array& X = val(t, x, "log_softmax");
    const std::size_t M = X.shape()[0], N = X.shape()[1];
    if (N == 0) throw ShapeError(fmt::format("log_softmax: input {} has no columns", shape_str(X)));
    Node& y = t.record("log_softmax", {x}, [](Tape& t, Node& y) {
        Array* G = acc_buf(t, y.in[0]);
        if (!G) return;
        const std::size_t M = y.grad.shape()[0], N = y.grad.shape()[1];
        for (std::size_t r = 0; r < M; ++r) {
            const float *g = y.grad.data() + r * N, *v = y.value.data() + r * N;
            float* d = G->data() + r * N;
            double gs = 0.0;
            for (std::size_t c = 0; c < N; ++c) gs += g[c];
            vmath::scaled_exp(v, d, N, 0.0f, -static_cast<float>(gs), true);
            for (std::size_t c = 0; c < N; ++c) d[c] += g[c];
        }
    });
    ensure_shape(y.value, {M, N});
    for (std::size_t r = 0; r < M; ++r) {
        const float* xr = X.data() + r * N;
        const float lse = vmath::logsumexp(xr, N);
        float* yr = y.value.data() + r * N;
        for (std::size_t c = 0; c < N; ++c) yr[c] = xr[c] - lse;
    }
    return t.var(y);
}

// y = exp(log_softmax(x)): composed, no rule of its own
Var softmax(Var x) { return exp(log_softmax(x)); }

// loss = reduce_i (lse_i - x_{i, t_i})    dx_ij += s g (softmax_ij - [j = t_i]),  s = 1/count (mean) or 1 (sum)
// logits: (n x V), targets: n ids in [0, V) or ignore_index -> (1 x 1). Saves only lse (n x 1), never softmax.
Var cross_entropy(Var logits, const Ids& targets, Reduction reduction, int ignore_index) {
    Tape& t = tape_of("cross_entropy", logits);
    const Array& X = val(t, logits, "cross_entropy");
    const std::size_t n = X.shape()[0], V = X.shape()[1];
    if (targets.size() != n)
        throw ShapeError(fmt::format("cross_entropy: {} targets for logits {} (want one per row)", targets.size(),
                                     shape_str(X)));
    std::size_t count = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (targets[i] == ignore_index) continue;
        if (targets[i] < 0 || static_cast<std::size_t>(targets[i]) >= V)
            throw IndexError(fmt::format("cross_entropy: target id {} at position {} is outside [0, {}) of logits {}",
                                         targets[i], i, V, shape_str(X)));
        ++count;
    }
    Node& y = t.record("cross_entropy", {logits}, [](Tape& t, Node& y) {
        bool fresh;
        Array* G = acc_raw(t, y.in[0], fresh);
        if (!G) return;
        const Array& X = t.at(y.in[0]).val();
        const std::size_t n = X.shape()[0], V = X.shape()[1];
        const float s = y.grad(0, 0) * y.f0;
        for (std::size_t i = 0; i < n; ++i) {
            float* d = G->data() + i * V;
            if (y.ids[i] == static_cast<std::int32_t>(y.i0)) {
                if (fresh) std::fill(d, d + V, 0.0f);
                continue;
            }
            vmath::scaled_exp(X.data() + i * V, d, V, y.aux(i, 0), s, !fresh);
            d[y.ids[i]] -= s;
        }
    });
    y.ids.assign(targets.begin(), targets.end());
    y.i0 = ignore_index;
    y.f0 = reduction == Reduction::mean ? (count ? 1.0f / static_cast<float>(count) : 0.0f) : 1.0f;
    ensure_shape(y.aux, {n, 1});
    double total = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        const float lse = vmath::logsumexp(X.data() + i * V, V);
        y.aux(i, 0) = lse;
        if (targets[i] != ignore_index) total += static_cast<double>(lse) - X(i, targets[i]);
    }
    ensure_shape(y.value, {1, 1});
    y.value(0, 0) = static_cast<float>(total * y.f0);
    return t.var(y);
}

}  // namespace xtgrad
