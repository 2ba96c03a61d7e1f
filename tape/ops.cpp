// Every op of xtgrad: a math line, a shape line, the forward pass, and its backward rule right below.
// Forward assigns the node's value; backward ACCUMULATES into the inputs' gradients (an input may be used
// twice). Gradients start uninitialised: the first rule to reach a node assigns (acc_raw says so), later
// ones add.

#include <xtgrad/tape/ops.hpp>
#include <xtgrad/tape/op_kit.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/core.h>

#include <xtgrad/lib/blas.hpp>
#include <xtgrad/lib/error.hpp>
#include <xtgrad/lib/parallel.hpp>
#include <xtgrad/lib/vmath.hpp>

namespace xtgrad {

using namespace kit;

namespace {

// The unrounded value of a (1 x 1) node that has one (a full reduction's), else NaN.
double exact(const Node& n) { return n.val().size() == 1 ? n.f64 : std::numeric_limits<double>::quiet_NaN(); }

// Scalar arithmetic on unrounded reductions stays in double (a loss plus a penalty, a sum of cross-entropies): y's
// f64 = f(inputs' f64) when y is (1 x 1) and every input has one; its float value is then that, rounded once.
template <class F>
void keep_exact(Tape& t, Node& y, F f) {
    if (y.value.size() != 1) return;
    const double a = exact(t.at(y.in[0])), b = y.in.size() > 1 ? exact(t.at(y.in[1])) : 0.0;
    if (std::isnan(a) || std::isnan(b)) return;
    y.f64 = f(a, b);
    y.value(0, 0) = static_cast<float>(y.f64);
}

// Rows of a (rows x cols) pass per thread at least: about 64K entries, so that waking a helper pays.
std::size_t rows_grain(std::size_t cols) {
    return std::max<std::size_t>(1, (std::size_t{1} << 16) / std::max<std::size_t>(cols, 1));
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
    keep_exact(t, y, [a, b](double v, double) { return static_cast<double>(a) * v + static_cast<double>(b); });
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
        binary_backward(t, y.in[0], y.in[1], y.grad, A, B, [](float g, float) { return g; },
                        [](float g, float) { return g; });
    });
    ensure_shape(y.value, s);
    binary_forward(A, B, y.value, [](float p, float q) { return p + q; });
    keep_exact(t, y, [](double p, double q) { return p + q; });
    return t.var(y);
}

// y = a - b                       a, b: broadcastable -> broadcast shape
Var sub(Var a, Var b) {
    Tape& t = tape_of("sub", a);
    const Array &A = val(t, a, "sub"), &B = val(t, b, "sub");
    const Shape s = broadcast_shape("sub", A, B);
    Node& y = t.record("sub", {a, b}, [](Tape& t, Node& y) {
        const Array &A = t.at(y.in[0]).val(), &B = t.at(y.in[1]).val();
        binary_backward(t, y.in[0], y.in[1], y.grad, A, B, [](float g, float) { return g; },
                        [](float g, float) { return -g; });
    });
    ensure_shape(y.value, s);
    binary_forward(A, B, y.value, [](float p, float q) { return p - q; });
    keep_exact(t, y, [](double p, double q) { return p - q; });
    return t.var(y);
}

// y = a * b     da += g * b, db += g * a        a, b: broadcastable -> broadcast shape
Var mul(Var a, Var b) {
    Tape& t = tape_of("mul", a);
    const Array &A = val(t, a, "mul"), &B = val(t, b, "mul");
    const Shape s = broadcast_shape("mul", A, B);
    Node& y = t.record("mul", {a, b}, [](Tape& t, Node& y) {
        const Array &A = t.at(y.in[0]).val(), &B = t.at(y.in[1]).val();
        binary_backward(t, y.in[0], y.in[1], y.grad, A, B, [](float g, float q) { return g * q; },
                        [](float g, float p) { return g * p; });
    });
    ensure_shape(y.value, s);
    binary_forward(A, B, y.value, [](float p, float q) { return p * q; });
    keep_exact(t, y, [](double p, double q) { return p * q; });
    return t.var(y);
}

// y = a / b     da += g / b, db -= g y / b        a, b: broadcastable -> broadcast shape
Var div(Var a, Var b) {
    Tape& t = tape_of("div", a);
    const Array &A = val(t, a, "div"), &B = val(t, b, "div");
    const Shape s = broadcast_shape("div", A, B);
    Node& y = t.record("div", {a, b}, [](Tape& t, Node& y) {
        const Array& B = t.at(y.in[1]).val();
        binary_backward(t, y.in[0], y.grad, B, [](float g, float q) { return g / q; });
        if (!t.at(y.in[1]).requires_grad) return;
        ensure_shape(y.scratch, shape_of(y.value));  // g y, then reduced over b's broadcast dimensions
        const float *g = y.grad.data(), *v = y.value.data();
        float* gy = y.scratch.data();
        for (std::size_t k = 0; k < y.scratch.size(); ++k) gy[k] = g[k] * v[k];
        binary_backward(t, y.in[1], y.scratch, B, [](float gy, float q) { return -gy / q; });
    });
    binary_forward(A, B, out(y, s), [](float p, float q) { return p / q; });
    keep_exact(t, y, [](double p, double q) { return p / q; });
    return t.var(y);
}

namespace {
// y[k] = a + b * c over a row of n, each operand either a row of n or (flag set) one value for the whole row.
template <bool OneA, bool OneB, bool OneC>
void addcmul_row(const float* a, const float* b, const float* c, float* y, std::size_t n) {
    const float a0 = a[0], b0 = b[0], c0 = c[0];
    for (std::size_t k = 0; k < n; ++k) y[k] = (OneA ? a0 : a[k]) + (OneB ? b0 : b[k]) * (OneC ? c0 : c[k]);
}
}  // namespace

// y = a + b * c     da += g, db += g c, dc += g b      a, b, c: broadcastable -> broadcast shape
// One pass forward where the multiply-add would take two ops (and two stored values): the shift and scale of a
// LayerNorm, a gate's mix.
Var addcmul(Var a, Var b, Var c) {
    Tape& t = tape_of("addcmul", a);
    const Array &A = val(t, a, "addcmul"), &Bv = val(t, b, "addcmul"), &C = val(t, c, "addcmul");
    const Shape s = broadcast_shape("addcmul", broadcast_shape("addcmul", A, Bv), shape_of(C));
    Node& y = t.record("addcmul", {a, b, c}, [](Tape& t, Node& y) {
        const Array &B = t.at(y.in[1]).val(), &C = t.at(y.in[2]).val();
        binary_backward(t, y.in[0], y.grad, y.grad, [](float g, float) { return g; });
        binary_backward(t, y.in[1], y.in[2], y.grad, B, C, [](float g, float q) { return g * q; },
                        [](float g, float p) { return g * p; });
    });
    Array& Y = out(y, s);
    const std::size_t R = s[0], N = s[1];
    const Bcast ba(A), bb(Bv), bc(C);
    // one loop per pattern of operands that are a single value along the row (a column or a scalar)
    using RowFn = void (*)(const float*, const float*, const float*, float*, std::size_t);
    static constexpr RowFn kRow[8] = {addcmul_row<0, 0, 0>, addcmul_row<0, 0, 1>, addcmul_row<0, 1, 0>,
                                      addcmul_row<0, 1, 1>, addcmul_row<1, 0, 0>, addcmul_row<1, 0, 1>,
                                      addcmul_row<1, 1, 0>, addcmul_row<1, 1, 1>};
    const RowFn row = kRow[(ba.cs ? 0 : 4) + (bb.cs ? 0 : 2) + (bc.cs ? 0 : 1)];
    for (std::size_t r = 0; r < R; ++r)
        row(A.data() + r * ba.rs, Bv.data() + r * bb.rs, C.data() + r * bc.rs, Y.data() + r * N, N);
    return t.var(y);
}

// y = c x      dx += c g
Var scale(Var x, float c) { return linear_scalar("scale", x, c, 0.0f); }
// y = x + c    dx += g
Var add_scalar(Var x, float c) { return linear_scalar("add_scalar", x, 1.0f, c); }
// y = -x       dx -= g
Var neg(Var x) { return linear_scalar("neg", x, -1.0f, 0.0f); }

// ============================================================ matrix products
// Each records its precision (kit::product_precision): on a bf16 tape a product over more than kStepRows rows and
// both products of its rule take bf16 operands (the tape's copies of the inputs, the gradient converted once).

namespace {
// y (+)= op(A) op(B) in the node's precision.
void forward_product(Tape& t, Node& y, const char* who, const Array& A, bool ta, const Array& B, bool tb, float beta) {
    if (y.prec == Precision::bf16)
        gemm(who, t.bf16_of(A), ta, t.bf16_of(B), tb, mat(y.value), 1.0f, beta);
    else
        gemm(who, cmat(A), ta, cmat(B), tb, mat(y.value), 1.0f, beta);
}
}  // namespace

// y = a b      da += g b^T, db += a^T g          a: (M x K), b: (K x N) -> (M x N)
// db (b is the weight in h W) is stacked across steps by acc_weight_grad; da (a weight on the left, W x) is not:
// its product g b^T sums over the columns of g, which do not stack by rows.
Var matmul(Var a, Var b) {
    Tape& t = tape_of("matmul", a);
    const Array &A = val(t, a, "matmul"), &B = val(t, b, "matmul");
    if (A.shape()[1] != B.shape()[0])
        throw ShapeError(fmt::format("matmul: cannot multiply {} by {}", shape_str(A), shape_str(B)));
    Node& y = t.record("matmul", {a, b}, [](Tape& t, Node& y) {
        const Array &A = t.at(y.in[0]).val(), &B = t.at(y.in[1]).val();
        if (y.prec == Precision::bf16) {
            const ConstMat16 g = grad_bf16(y);
            acc_gemm(t, y.in[0], "matmul backward", g, false, t.bf16_of(B), true);
            acc_gemm(t, y.in[1], "matmul backward", t.bf16_of(A), true, g, false);
            return;
        }
        acc_gemm(t, y.in[0], "matmul backward", cmat(y.grad), false, cmat(B), true);
        acc_weight_grad(t, y.in[1], "matmul backward", A, y.grad);
    });
    y.prec = product_precision(t, A.shape()[0]);
    out(y, {A.shape()[0], B.shape()[1]});
    forward_product(t, y, "matmul", A, false, B, false, 0.0f);
    return t.var(y);
}

// y = a b^T    da += g b, db += g^T a            a: (M x K), b: (N x K) -> (M x N)
Var matmul_t(Var a, Var b) {
    Tape& t = tape_of("matmul_t", a);
    const Array &A = val(t, a, "matmul_t"), &B = val(t, b, "matmul_t");
    if (A.shape()[1] != B.shape()[1])
        throw ShapeError(fmt::format("matmul_t: cannot multiply {} by the transpose of {}", shape_str(A),
                                     shape_str(B)));
    Node& y = t.record("matmul_t", {a, b}, [](Tape& t, Node& y) {
        const Array &A = t.at(y.in[0]).val(), &B = t.at(y.in[1]).val();
        if (y.prec == Precision::bf16) {
            const ConstMat16 g = grad_bf16(y);
            acc_gemm(t, y.in[0], "matmul_t backward", g, false, t.bf16_of(B), false);
            acc_gemm(t, y.in[1], "matmul_t backward", g, true, t.bf16_of(A), false);
            return;
        }
        acc_gemm(t, y.in[0], "matmul_t backward", cmat(y.grad), false, cmat(B), false);
        acc_weight_grad(t, y.in[1], "matmul_t backward", y.grad, A);
    });
    y.prec = product_precision(t, A.shape()[0]);
    out(y, {A.shape()[0], B.shape()[0]});
    forward_product(t, y, "matmul_t", A, false, B, true, 0.0f);
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
        const std::size_t M = y.value.shape()[0], N = y.value.shape()[1];
        if (y.prec == Precision::bf16) {
            const ConstMat16 g = grad_bf16(y);
            acc_gemm(t, y.in[0], "affine backward", g, false, t.bf16_of(Wv), false);
            acc_gemm(t, y.in[1], "affine backward", g, true, t.bf16_of(X), false);
            if (Array* gb = acc_buf(t, y.in[2]))  // column sums of the bf16 gradient, in fp32
                for (std::size_t r = 0; r < M; ++r) vmath::axpy_bf16(1.0f, g.data + r * N, gb->data(), N);
            return;
        }
        acc_gemm(t, y.in[0], "affine backward", cmat(y.grad), false, cmat(Wv), false);
        acc_weight_grad(t, y.in[1], "affine backward", y.grad, X);
        if (Array* gb = acc_buf(t, y.in[2]))
            for (std::size_t r = 0; r < M; ++r) vmath::axpy(1.0f, y.grad.data() + r * N, gb->data(), N);
    });
    y.prec = product_precision(t, M);
    ensure_shape(y.value, {M, N});
    float* py = y.value.data();
    for (std::size_t r = 0; r < M; ++r) std::copy(Bv.data(), Bv.data() + N, py + r * N);
    forward_product(t, y, "affine", X, false, Wv, true, 1.0f);
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

// y = sqrt(x)        dx += g / (2 y)
Var sqrt(Var x) {
    return unary("sqrt", x, vmath::sqrt, [](Tape& t, Node& y) {
        const float *g = y.grad.data(), *v = y.value.data();
        acc_map(t, y.in[0], [&](std::size_t k) { return 0.5f * g[k] / v[k]; });
    });
}

// y = 1 / sqrt(x)    dx += -g y^3 / 2
Var rsqrt(Var x) {
    return unary("rsqrt", x, vmath::rsqrt, [](Tape& t, Node& y) {
        const float *g = y.grad.data(), *v = y.value.data();
        acc_map(t, y.in[0], [&](std::size_t k) { return -0.5f * g[k] * v[k] * v[k] * v[k]; });
    });
}

// y = x^p            dx += g p x^(p-1)            x: (M x N) -> (M x N); p = 2 is a fused square
Var pow(Var x, float p) {
    Tape& t = tape_of("pow", x);
    const Array& X = val(t, x, "pow");
    if (!std::isfinite(p)) throw ConfigError(fmt::format("pow: exponent {} is not finite", p));
    Node& y = t.record("pow", {x}, [](Tape& t, Node& y) {
        const float p = y.f0;
        const float *g = y.grad.data(), *x = t.at(y.in[0]).val().data();
        if (p == 2.0f) return acc_map(t, y.in[0], [&](std::size_t k) { return 2.0f * g[k] * x[k]; });
        if (p == 1.0f) return acc_map(t, y.in[0], [&](std::size_t k) { return g[k]; });
        if (p == 0.0f) return acc_map(t, y.in[0], [&](std::size_t) { return 0.0f; });
        ensure_shape(y.scratch, shape_of(y.value));  // x^(p-1)
        vmath::pow(x, y.scratch.data(), y.scratch.size(), p - 1.0f);
        const float* d = y.scratch.data();
        acc_map(t, y.in[0], [&](std::size_t k) { return p * g[k] * d[k]; });
    });
    y.f0 = p;
    float* py = out(y, shape_of(X)).data();
    const float* px = X.data();
    if (p == 2.0f)  // the square (LayerNorm's variance, AR penalties): one multiply, not a power loop
        for (std::size_t k = 0; k < X.size(); ++k) py[k] = px[k] * px[k];
    else
        vmath::pow(px, py, X.size(), p);
    return t.var(y);
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
    const std::size_t n = std::max<std::size_t>(X.size(), 1);
    y.f0 = average ? 1.0f / static_cast<float>(n) : 1.0f;
    y.f64 = average ? s / static_cast<double>(n) : s;
    out(y, {1, 1})(0, 0) = static_cast<float>(y.f64);
    return t.var(y);
}

// y = s * sum of x along `axis`, keeping the dimension; the rule broadcasts s g back.
Var reduce_axis(const char* op, Var x, int axis, bool average) {
    Tape& t = tape_of(op, x);
    const Array& X = val(t, x, op);
    check_axis(op, axis);
    const std::size_t M = X.shape()[0], N = X.shape()[1];
    Node& y = t.record(op, {x}, [](Tape& t, Node& y) {
        bool fresh;
        Array* G = acc_raw(t, y.in[0], fresh);
        if (!G) return;
        const std::size_t M = G->shape()[0], N = G->shape()[1];
        const float s = y.f0, *g = y.grad.data();
        float* d = G->data();
        for (std::size_t r = 0; r < M; ++r) {
            float* dr = d + r * N;
            if (y.i0 == 1) {  // every entry of row r gets s g[r]
                const float v = s * g[r];
                if (fresh)
                    std::fill(dr, dr + N, v);
                else
                    for (std::size_t c = 0; c < N; ++c) dr[c] += v;
            } else if (fresh) {  // row r gets s g
                for (std::size_t c = 0; c < N; ++c) dr[c] = s * g[c];
            } else {
                vmath::axpy(s, g, dr, N);
            }
        }
    });
    y.i0 = axis;
    y.f0 = average ? 1.0f / static_cast<float>(std::max<std::size_t>(axis == 1 ? N : M, 1)) : 1.0f;
    const float s = y.f0;
    const float* px = X.data();
    if (axis == 1) {
        float* py = out(y, {M, 1}).data();
        for (std::size_t r = 0; r < M; ++r) py[r] = s * vmath::sum(px + r * N, N);
    } else {
        float* py = out(y, {1, N}).data();
        std::fill(py, py + N, 0.0f);
        for (std::size_t r = 0; r < M; ++r) vmath::axpy(1.0f, px + r * N, py, N);
        if (average) vmath::scale(py, N, s);
    }
    return t.var(y);
}
}  // namespace

// y = sum_ij x_ij    dx_ij += g                     -> (1 x 1)
Var sum(Var x) { return reduce_all("sum", x, false); }
// y = sum_ij x_ij / n    dx_ij += g / n             -> (1 x 1)
Var mean(Var x) { return reduce_all("mean", x, true); }

// y_i = sum_j x_ij (axis 1), y_j = sum_i x_ij (axis 0)      dx_ij += g_i (or g_j)
// x: (M x N) -> (M x 1) (axis 1) or (1 x N) (axis 0)
Var sum(Var x, int axis) { return reduce_axis("sum_axis", x, axis, false); }

// y_i = sum_j x_ij / N (axis 1), y_j = sum_i x_ij / M (axis 0)      dx_ij += g_i / N (or g_j / M)
// x: (M x N) -> (M x 1) (axis 1) or (1 x N) (axis 0)
Var mean(Var x, int axis) { return reduce_axis("mean_axis", x, axis, true); }

// y_i = sum_j (x_ij - m_i)^2 / N (axis 1), y_j = sum_i (x_ij - m_j)^2 / M (axis 0), m the mean along the axis:
// the biased variance (PyTorch's var(unbiased=False)), two passes (the mean, then the squares about it).
// dx_ij += g_i 2 (x_ij - m_i) / N (or g_j 2 (x_ij - m_j) / M)   x: (M x N) -> (M x 1) or (1 x N); aux keeps m
Var var(Var x, int axis) {
    Tape& t = tape_of("var_axis", x);
    const Array& X = val(t, x, "var_axis");
    check_axis("var_axis", axis);
    const std::size_t M = X.shape()[0], N = X.shape()[1];
    Node& y = t.record("var_axis", {x}, [](Tape& t, Node& y) {
        bool fresh;
        Array* G = acc_raw(t, y.in[0], fresh);
        if (!G) return;
        const std::size_t M = G->shape()[0], N = G->shape()[1];
        const float *x = t.at(y.in[0]).val().data(), *g = y.grad.data(), *m = y.aux.data();
        float* d = G->data();
        for (std::size_t r = 0; r < M; ++r) {
            const float *xr = x + r * N;
            float* dr = d + r * N;
            if (y.i0 == 1) {
                const float k = y.f0 * g[r], mr = m[r];
                if (fresh)
                    for (std::size_t c = 0; c < N; ++c) dr[c] = k * (xr[c] - mr);
                else
                    for (std::size_t c = 0; c < N; ++c) dr[c] += k * (xr[c] - mr);
            } else {
                const float k = y.f0;
                if (fresh)
                    for (std::size_t c = 0; c < N; ++c) dr[c] = k * g[c] * (xr[c] - m[c]);
                else
                    for (std::size_t c = 0; c < N; ++c) dr[c] += k * g[c] * (xr[c] - m[c]);
            }
        }
    });
    y.i0 = axis;
    const std::size_t n = std::max<std::size_t>(axis == 1 ? N : M, 1);
    y.f0 = 2.0f / static_cast<float>(n);
    const float inv = 1.0f / static_cast<float>(n);
    const float* px = X.data();
    if (axis == 1) {
        float* v = out(y, {M, 1}).data();
        ensure_shape(y.aux, {M, 1});
        for (std::size_t r = 0; r < M; ++r) {
            const float* xr = px + r * N;
            const float mr = inv * vmath::sum(xr, N);
            float s[8] = {};
            std::size_t c = 0;
            for (; c + 8 <= N; c += 8)
                for (std::size_t j = 0; j < 8; ++j) s[j] += (xr[c + j] - mr) * (xr[c + j] - mr);
            for (; c < N; ++c) s[0] += (xr[c] - mr) * (xr[c] - mr);
            y.aux(r, 0) = mr;
            v[r] = inv * (((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])));
        }
    } else {
        float* v = out(y, {1, N}).data();
        ensure_shape(y.aux, {1, N});
        float* m = y.aux.data();
        std::fill(m, m + N, 0.0f);
        for (std::size_t r = 0; r < M; ++r) vmath::axpy(1.0f, px + r * N, m, N);
        vmath::scale(m, N, inv);
        std::fill(v, v + N, 0.0f);
        for (std::size_t r = 0; r < M; ++r)
            for (std::size_t c = 0; c < N; ++c) v[c] += (px[r * N + c] - m[c]) * (px[r * N + c] - m[c]);
        vmath::scale(v, N, inv);
    }
    return t.var(y);
}

// y_i = max_j x_ij (axis 1), y_j = max_i x_ij (axis 0)      dx at the (first) maximum += g
// x: (M x N) -> (M x 1) (axis 1) or (1 x N) (axis 0); ids keeps the position of each maximum
Var max(Var x, int axis) {
    Tape& t = tape_of("max_axis", x);
    const Array& X = val(t, x, "max_axis");
    check_axis("max_axis", axis);
    const std::size_t M = X.shape()[0], N = X.shape()[1];
    if (X.size() == 0) throw ShapeError(fmt::format("max_axis: input {} is empty", shape_str(X)));
    Node& y = t.record("max_axis", {x}, [](Tape& t, Node& y) {
        Array* G = acc_buf(t, y.in[0]);
        if (!G) return;
        const std::size_t N = G->shape()[1];
        const float* g = y.grad.data();
        float* d = G->data();
        for (std::size_t k = 0; k < y.ids.size(); ++k) {
            const std::size_t at = static_cast<std::size_t>(y.ids[k]);
            d[y.i0 == 1 ? k * N + at : at * N + k] += g[k];
        }
    });
    y.i0 = axis;
    const float* px = X.data();
    if (axis == 1) {
        y.ids.resize(M);
        float* py = out(y, {M, 1}).data();
        for (std::size_t r = 0; r < M; ++r) {
            const float* xr = px + r * N;
            std::size_t best = 0;
            for (std::size_t c = 1; c < N; ++c)
                if (xr[c] > xr[best] || (std::isnan(xr[c]) && !std::isnan(xr[best]))) best = c;
            y.ids[r] = static_cast<std::int32_t>(best);
            py[r] = xr[best];
        }
    } else {
        y.ids.assign(N, 0);
        float* py = out(y, {1, N}).data();
        std::copy(px, px + N, py);
        for (std::size_t r = 1; r < M; ++r) {
            const float* xr = px + r * N;
            for (std::size_t c = 0; c < N; ++c) {
                if (xr[c] > py[c] || (std::isnan(xr[c]) && !std::isnan(py[c]))) {
                    py[c] = xr[c];
                    y.ids[c] = static_cast<std::int32_t>(r);
                }
            }
        }
    }
    return t.var(y);
}

namespace {
// s * sum of the entries of x where the mask (broadcast to x) is 1; s = 1 or 1 / count.
Var masked_reduce(const char* op, Var x, Var mask, bool average) {
    Tape& t = tape_of(op, x);
    const Array &X = val(t, x, op), &Mk = val(t, mask, op);
    if (broadcast_shape(op, X, Mk) != shape_of(X))
        throw ShapeError(fmt::format("{}: mask {} does not broadcast to x {}", op, shape_str(Mk), shape_str(X)));
    check_mask(op, Mk);
    Node& y = t.record(op, {x, mask}, [](Tape& t, Node& y) {
        bool fresh;
        Array* G = acc_raw(t, y.in[0], fresh);
        if (!G) return;
        const Array& Mk = t.at(y.in[1]).val();
        const float g = y.grad(0, 0) * y.f0;
        const std::size_t M = G->shape()[0], N = G->shape()[1];
        const Bcast bm(Mk);
        float* d = G->data();
        for (std::size_t r = 0; r < M; ++r)
            for (std::size_t c = 0; c < N; ++c) {
                const float v = Mk.data()[bm.at(r, c)] != 0.0f ? g : 0.0f;
                d[r * N + c] = fresh ? v : d[r * N + c] + v;
            }
    });
    const std::size_t M = X.shape()[0], N = X.shape()[1];
    const Bcast bm(Mk);
    double s = 0.0;
    std::size_t count = 0;
    for (std::size_t r = 0; r < M; ++r)
        for (std::size_t c = 0; c < N; ++c)
            if (Mk.data()[bm.at(r, c)] != 0.0f) {
                s += X.data()[r * N + c];
                ++count;
            }
    y.f0 = average ? (count ? 1.0f / static_cast<float>(count) : 0.0f) : 1.0f;
    y.f64 = average ? (count ? s / static_cast<double>(count) : 0.0) : s;
    out(y, {1, 1})(0, 0) = static_cast<float>(y.f64);
    return t.var(y);
}
}  // namespace

// y = sum_ij m_ij x_ij     dx_ij += g m_ij          x: (M x N), mask: 0/1, broadcast to x -> (1 x 1)
Var masked_sum(Var x, Var mask) { return masked_reduce("masked_sum", x, mask, false); }

// y = sum_ij m_ij x_ij / sum_ij m_ij   dx_ij += g m_ij / count   (count = 0: y = 0)   -> (1 x 1)
Var masked_mean(Var x, Var mask) { return masked_reduce("masked_mean", x, mask, true); }

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

// y = x^T            dx += g^T                     x: (M x N) -> (N x M)
Var transpose(Var x) {
    Tape& t = tape_of("transpose", x);
    const Array& X = val(t, x, "transpose");
    const std::size_t M = X.shape()[0], N = X.shape()[1];
    Node& y = t.record("transpose", {x}, [](Tape& t, Node& y) {
        bool fresh;
        Array* G = acc_raw(t, y.in[0], fresh);
        if (!G) return;
        const std::size_t M = G->shape()[0], N = G->shape()[1];
        const float* g = y.grad.data();  // (N x M)
        float* d = G->data();
        for (std::size_t r = 0; r < M; ++r)
            for (std::size_t c = 0; c < N; ++c) d[r * N + c] = (fresh ? 0.0f : d[r * N + c]) + g[c * M + r];
    });
    float* py = out(y, {N, M}).data();
    constexpr std::size_t tile = 32;  // cache-friendly tiles
    for (std::size_t r0 = 0; r0 < M; r0 += tile)
        for (std::size_t c0 = 0; c0 < N; c0 += tile)
            for (std::size_t r = r0; r < std::min(M, r0 + tile); ++r)
                for (std::size_t c = c0; c < std::min(N, c0 + tile); ++c) py[c * M + r] = X.data()[r * N + c];
    return t.var(y);
}

// ============================================================ products for attention over k states

namespace {
// The block width of m for a (rows x w) query: m must have the same rows and k >= 1 blocks of w columns.
std::size_t blocks_of(const char* op, const Array& q, const Array& m, bool q_is_weights) {
    const std::size_t R = q.shape()[0], w = q.shape()[1], Mc = m.shape()[1];
    const std::size_t k = q_is_weights ? w : (w ? Mc / w : 0), H = q_is_weights ? (w ? Mc / w : 0) : w;
    if (m.shape()[0] != R || w == 0 || Mc == 0 || Mc % w != 0) {
        throw ShapeError(fmt::format(
            "{}: {} {} and memory {} do not fit (want the same rows and memory columns a multiple of {})", op,
            q_is_weights ? "weights" : "query", shape_str(q), shape_str(m), w));
    }
    return q_is_weights ? H : k;
}
}  // namespace

// y[b, j] = sum_h q[b, h] m[b, j H + h]       dq[b, :] += sum_j g[b, j] m[b, block j], dm[b, block j] += g[b, j] q[b, :]
// q: (B x H), m: (B x k*H) -> (B x k); with k = 1 (m: B x H) the per-row dot product
Var block_dot(Var q, Var m) {
    Tape& t = tape_of("block_dot", q);
    const Array &Q = val(t, q, "block_dot"), &Mm = val(t, m, "block_dot");
    const std::size_t k = blocks_of("block_dot", Q, Mm, false), B = Q.shape()[0], H = Q.shape()[1];
    Node& y = t.record("block_dot", {q, m}, [](Tape& t, Node& y) {
        const Array &Q = t.at(y.in[0]).val(), &Mm = t.at(y.in[1]).val();
        const std::size_t B = Q.shape()[0], H = Q.shape()[1], k = y.grad.shape()[1];
        const float* g = y.grad.data();
        bool fresh;
        if (Array* G = acc_raw(t, y.in[0], fresh)) {
            for (std::size_t b = 0; b < B; ++b) {
                float* d = G->data() + b * H;
                if (fresh) std::fill(d, d + H, 0.0f);
                for (std::size_t j = 0; j < k; ++j) vmath::axpy(g[b * k + j], Mm.data() + (b * k + j) * H, d, H);
            }
        }
        if (Array* G = acc_raw(t, y.in[1], fresh)) {
            for (std::size_t b = 0; b < B; ++b)
                for (std::size_t j = 0; j < k; ++j) {
                    float* d = G->data() + (b * k + j) * H;
                    if (fresh) std::fill(d, d + H, 0.0f);
                    vmath::axpy(g[b * k + j], Q.data() + b * H, d, H);
                }
        }
    });
    float* py = out(y, {B, k}).data();
    for (std::size_t b = 0; b < B; ++b)
        for (std::size_t j = 0; j < k; ++j) py[b * k + j] = vmath::dot(Q.data() + b * H, Mm.data() + (b * k + j) * H, H);
    return t.var(y);
}

// y[b, :] = sum_j w[b, j] m[b, block j]       dw[b, j] += g[b, :] . m[b, block j], dm[b, block j] += w[b, j] g[b, :]
// w: (B x k), m: (B x k*H) -> (B x H)
Var block_mix(Var w, Var m) {
    Tape& t = tape_of("block_mix", w);
    const Array &Wt = val(t, w, "block_mix"), &Mm = val(t, m, "block_mix");
    const std::size_t H = blocks_of("block_mix", Wt, Mm, true), B = Wt.shape()[0], k = Wt.shape()[1];
    Node& y = t.record("block_mix", {w, m}, [](Tape& t, Node& y) {
        const Array &Wt = t.at(y.in[0]).val(), &Mm = t.at(y.in[1]).val();
        const std::size_t B = Wt.shape()[0], k = Wt.shape()[1], H = y.grad.shape()[1];
        const float* g = y.grad.data();
        bool fresh;
        if (Array* G = acc_raw(t, y.in[0], fresh)) {
            float* d = G->data();
            for (std::size_t b = 0; b < B; ++b)
                for (std::size_t j = 0; j < k; ++j) {
                    const float v = vmath::dot(g + b * H, Mm.data() + (b * k + j) * H, H);
                    d[b * k + j] = fresh ? v : d[b * k + j] + v;
                }
        }
        if (Array* G = acc_raw(t, y.in[1], fresh)) {
            for (std::size_t b = 0; b < B; ++b)
                for (std::size_t j = 0; j < k; ++j) {
                    float* d = G->data() + (b * k + j) * H;
                    if (fresh) std::fill(d, d + H, 0.0f);
                    vmath::axpy(Wt.data()[b * k + j], g + b * H, d, H);
                }
        }
    });
    float* py = out(y, {B, H}).data();
    std::fill(py, py + B * H, 0.0f);
    for (std::size_t b = 0; b < B; ++b)
        for (std::size_t j = 0; j < k; ++j) vmath::axpy(Wt.data()[b * k + j], Mm.data() + (b * k + j) * H, py + b * H, H);
    return t.var(y);
}

// ============================================================ selection by a 0/1 mask

// y = m ? a : b (a copy, not arithmetic)      da += m g, db += (1 - m) g (each summed over its broadcast dims)
// mask, a, b: broadcastable (e.g. a (B x 1) mask over (B x H) states) -> broadcast shape; no gradient to the mask
Var where(Var mask, Var a, Var b) {
    Tape& t = tape_of("where", mask);
    const Array &Mk = val(t, mask, "where"), &A = val(t, a, "where"), &Bv = val(t, b, "where");
    const Shape s = broadcast_shape("where", broadcast_shape("where", shape_of(A), shape_of(Bv)), shape_of(Mk));
    check_mask("where", Mk);
    Node& y = t.record("where", {mask, a, b}, [](Tape& t, Node& y) {
        const Array& Mk = t.at(y.in[0]).val();
        binary_backward(t, y.in[1], y.grad, Mk, [](float g, float m) { return m != 0.0f ? g : 0.0f; });
        binary_backward(t, y.in[2], y.grad, Mk, [](float g, float m) { return m != 0.0f ? 0.0f : g; });
    });
    const std::size_t R = s[0], C = s[1];
    float* py = out(y, s).data();
    const Bcast bm(Mk), ba(A), bb(Bv);
    for (std::size_t r = 0; r < R; ++r) {
        const float *mr = Mk.data() + r * bm.rs, *ar = A.data() + r * ba.rs, *br = Bv.data() + r * bb.rs;
        float* yr = py + r * C;
        if (!bm.cs) {  // one choice for the whole row
            const bool pick_a = mr[0] != 0.0f;
            const float* src = pick_a ? ar : br;
            if (pick_a ? ba.cs : bb.cs)
                std::copy(src, src + C, yr);
            else
                std::fill(yr, yr + C, src[0]);
        } else {
            for (std::size_t c = 0; c < C; ++c) yr[c] = mr[c] != 0.0f ? ar[c * ba.cs] : br[c * bb.cs];
        }
    }
    return t.var(y);
}

// y = m ? v : x      dx += (1 - m) g                x: (M x N), mask: 0/1 broadcast to x -> (M x N)
Var masked_fill(Var x, Var mask, float v) {
    Tape& t = tape_of("masked_fill", x);
    const Array &X = val(t, x, "masked_fill"), &Mk = val(t, mask, "masked_fill");
    if (broadcast_shape("masked_fill", shape_of(X), shape_of(Mk)) != shape_of(X))
        throw ShapeError(fmt::format("masked_fill: mask {} does not broadcast to x {}", shape_str(Mk), shape_str(X)));
    check_mask("masked_fill", Mk);
    Node& y = t.record("masked_fill", {x, mask}, [](Tape& t, Node& y) {
        const Array& Mk = t.at(y.in[1]).val();
        binary_backward(t, y.in[0], y.grad, Mk, [](float g, float m) { return m != 0.0f ? 0.0f : g; });
    });
    binary_forward(X, Mk, out(y, shape_of(X)), [v](float p, float m) { return m != 0.0f ? v : p; });
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
    Node& y = t.record("gather", {table}, [](Tape& t, Node& y) { acc_rows(t, y.in[0], y.ids, y.grad); });
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
}  // namespace

// y = x * m, m_ij in {0, 1/(1-p)} keyed by (seed, global row, column)    dx += g * m
Var dropout(Var x, float p, const MaskKey& key) {
    check_rate("dropout", p);
    if (p == 0.0f) return x;
    Tape& t = tape_of("dropout", x);
    const Array& X = val(t, x, "dropout");
    Node& y = t.record("dropout", {x}, [](Tape& t, Node& y) {
        const float *g = y.grad.data(), *m = y.aux.data();
        acc_map(t, y.in[0], [&](std::size_t k) { return g[k] * m[k]; });
    });
    ensure_shape(y.aux, shape_of(X));
    fill_dropout_mask(y.aux.data(), X.shape()[0], X.shape()[1], p, key);
    ensure_shape(y.value, shape_of(X));
    for (std::size_t k = 0; k < X.size(); ++k) y.value.data()[k] = X.data()[k] * y.aux.data()[k];
    return t.var(y);
}

Var dropout(Var x, float p, Rng& rng) {
    check_rate("dropout", p);
    return p == 0.0f ? x : dropout(x, p, MaskKey{rng.next_u64()});
}

// m_ij in {0, 1/(1-p)} keyed as dropout's: a constant, to share one mask among several values
Var dropout_mask(Tape& t, Shape s, float p, const MaskKey& key) {
    check_rate("dropout_mask", p);
    Var m = t.constant(s, 1.0f);
    if (p > 0.0f) fill_dropout_mask(t.node(m).value.data(), s[0], s[1], p, key);
    return m;
}

Var dropout_mask(Tape& t, Shape s, float p, Rng& rng) {
    check_rate("dropout_mask", p);
    return p == 0.0f ? t.constant(s, 1.0f) : dropout_mask(t, s, p, MaskKey{rng.next_u64()});
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
        const Array& X = t.at(y.in[0]).val();
        const std::size_t n = X.shape()[0], V = X.shape()[1];
        const float s = y.grad(0, 0) * y.f0;
        const auto ignored = [&y](std::size_t i) { return y.ids[i] == static_cast<std::int32_t>(y.i0); };
        if (bf16* d16 = acc_raw16(t, y.in[0])) {  // bf16 logits: their gradient is written in bf16 directly
            parallel_for(n, rows_grain(V), [&](std::size_t r0, std::size_t r1) {
                for (std::size_t i = r0; i < r1; ++i) {
                    bf16* d = d16 + i * V;
                    const float* x = X.data() + i * V;
                    if (ignored(i)) {
                        std::fill(d, d + V, bf16{0});
                        continue;
                    }
                    vmath::scaled_exp_bf16(x, d, V, y.aux(i, 0), s);
                    d[y.ids[i]] = float_to_bf16(s * std::exp(x[y.ids[i]] - y.aux(i, 0)) - s);  // rounded once
                }
            });
            return;
        }
        bool fresh;
        Array* G = acc_raw(t, y.in[0], fresh);
        if (!G) return;
        parallel_for(n, rows_grain(V), [&](std::size_t r0, std::size_t r1) {
            for (std::size_t i = r0; i < r1; ++i) {
                float* d = G->data() + i * V;
                if (ignored(i)) {
                    if (fresh) std::fill(d, d + V, 0.0f);
                    continue;
                }
                vmath::scaled_exp(X.data() + i * V, d, V, y.aux(i, 0), s, !fresh);
                d[y.ids[i]] -= s;
            }
        });
    });
    y.ids.assign(targets.begin(), targets.end());
    y.i0 = ignore_index;
    y.f0 = reduction == Reduction::mean ? (count ? 1.0f / static_cast<float>(count) : 0.0f) : 1.0f;
    ensure_shape(y.aux, {n, 1});
    parallel_for(n, rows_grain(V), [&](std::size_t r0, std::size_t r1) {
        for (std::size_t i = r0; i < r1; ++i) y.aux(i, 0) = vmath::logsumexp(X.data() + i * V, V);
    });
    double total = 0.0;  // in row order, whatever the threads
    for (std::size_t i = 0; i < n; ++i)
        if (targets[i] != ignore_index) total += static_cast<double>(y.aux(i, 0)) - X(i, targets[i]);
    y.f64 = reduction == Reduction::mean ? (count ? total / static_cast<double>(count) : 0.0) : total;
    out(y, {1, 1})(0, 0) = static_cast<float>(y.f64);
    return t.var(y);
}

}  // namespace xtgrad
