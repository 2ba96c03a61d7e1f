// The op kit: what an op's forward pass and backward rule are written with, inside the library or outside it.
// Include it only where ops are implemented (it is not part of <xtgrad/tape/ops.hpp>). docs/design.md shows a
// complete op written with it; tape/ops.cpp writes every built-in op the same way.
//
// The protocol (see docs/design.md, "Adding an op"):
//   1. read and check every input (tape_of, val, broadcast_shape, check_*) BEFORE recording: a throwing op
//      leaves the tape unchanged;
//   2. record the node with its backward rule (Tape::record; a captureless lambda);
//   3. compute the forward value into y.value (out() sizes it).
// A backward rule reads y.grad (and y.value, the inputs' val(), y.aux, ...) and ACCUMULATES into its inputs'
// gradients through acc_*: an input's gradient starts uninitialised and the first rule to reach it assigns.
#pragma once

#include <cstddef>
#include <cstdint>

#include <xtgrad/lib/blas.hpp>
#include <xtgrad/tape/tape.hpp>

namespace xtgrad::kit {

// ---- reading inputs (forward)

// The tape an input was recorded on; throws Error naming `op` for an empty handle.
Tape& tape_of(const char* op, Var v);
// An input's value; throws Error naming `op` if v is stale or belongs to another tape than t.
const Array& val(Tape& t, Var v, const char* op);
// The output node's value, sized to s (its buffer is reused when the size is unchanged).
inline Array& out(Node& y, Shape s) {
    ensure_shape(y.value, s);
    return y.value;
}

// ---- checks that name the op (call them before Tape::record)

// The shape of an elementwise result of a and b: each dimension equal, or 1 on one side; else ShapeError.
Shape broadcast_shape(const char* op, Shape a, Shape b);
inline Shape broadcast_shape(const char* op, const Array& a, const Array& b) {
    return broadcast_shape(op, shape_of(a), shape_of(b));
}
// Throws ShapeError unless a and b have the same shape.
void check_same_shape(const char* op, const Array& a, const Array& b);
// Throws IndexError unless lo < hi <= n (a slice [lo, hi) of x's `what` dimension).
void check_range(const char* op, const char* what, std::size_t lo, std::size_t hi, std::size_t n, const Array& x);
// Throws ShapeError unless axis is 0 (down the rows) or 1 (along each row).
void check_axis(const char* op, int axis);
// Throws ShapeError unless every entry of m is exactly 0 or 1 (a mask).
void check_mask(const char* op, const Array& m);

// ---- accumulating into an input's gradient (backward)

// The gradient buffer of input node i, zero-filled on first touch, for rules that scatter; null if i needs none.
Array* acc_buf(Tape& t, std::uint32_t i);
// The gradient buffer of input node i; on first touch it is sized but NOT filled and `fresh` is set (the rule
// must then assign every entry instead of adding). Null if i needs no gradient.
Array* acc_raw(Tape& t, std::uint32_t i, bool& fresh);

// G[k] (+)= f(k) for every k of input i's gradient: the shape of an elementwise rule.
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

// G[rows[k], :] += g[k, :] for input i (a row scatter, as gather's rule does); a parameter whose rows are tracked
// (Parameter::rows) stays row-sparse and lists the rows.
void acc_rows(Tape& t, std::uint32_t i, const Ids& rows, const Array& g);

// G (+)= op(A) op(B) for input i, one sgemm (beta = 0 on a fresh buffer, 1 otherwise); `who` names it on errors.
void acc_gemm(Tape& t, std::uint32_t i, const char* who, ConstMat A, bool transA, ConstMat B, bool transB);
// The same with bf16 operands (fp32 accumulation into the fp32 gradient).
void acc_gemm(Tape& t, std::uint32_t i, const char* who, ConstMat16 A, bool transA, ConstMat16 B, bool transB);

// ---- mixed precision (Tape::set_precision)

// Rows of a recurrent step's products at most: such products are stacked (acc_weight_grad) and stay fp32.
constexpr std::size_t kStepRows = 64;
// The precision of a matrix product over `rows` rows recorded now: bf16 on a bf16 tape above kStepRows rows. A
// product op stores it in its node (Node::prec) and its rule multiplies in the same precision.
Precision product_precision(Tape& t, std::size_t rows);
// The node's gradient in bf16 (converted into y.grad16, or as cross_entropy wrote it there): for the two products of
// a bf16 node's backward rule. Call once per rule.
ConstMat16 grad_bf16(Node& y);
// For a rule that can write input i's gradient in bf16 directly (cross_entropy into bf16 logits): the bf16 buffer to
// ASSIGN when i is a bf16 product's output that no rule has reached yet; else null (use acc_raw).
bf16* acc_raw16(Tape& t, std::uint32_t i);

// G (+)= A^T B for input i, where A and B have the same (few) rows: the gradient of a weight in a matrix product
// (affine, matmul_t: A = g, B = x; matmul(a, W): A = a, B = g). With at most 64 rows the product is deferred and
// stacked with the weight's other such products into one sgemm (Tape::defer_weight_grad). A and B must be node
// values or gradients of the current recording (or parameters' values), which stay unchanged until then.
void acc_weight_grad(Tape& t, std::uint32_t i, const char* who, const Array& A, const Array& B);

// ---- broadcasting (elementwise ops on operands with a size-1 dimension)

// How to read a possibly broadcast operand at output position (r, c).
struct Bcast {
    std::size_t rs, cs;  // row and column strides, 0 along a broadcast dimension
    explicit Bcast(const Array& a) : rs(a.shape()[0] == 1 ? 0 : a.shape()[1]), cs(a.shape()[1] == 1 ? 0 : 1) {}
    // Offset of output entry (r, c) in the operand.
    std::size_t at(std::size_t r, std::size_t c) const { return r * rs + c * cs; }
};

// y[r, c] = f(a[.], b[.]) with broadcasting; y already has the broadcast shape.
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
    for (std::size_t r = 0; r < R; ++r) {
        const float *ar = pa + r * ba.rs, *br = pb + r * bb.rs;
        float* yr = py + r * C;
        if (ba.cs && bb.cs) {
            for (std::size_t c = 0; c < C; ++c) yr[c] = f(ar[c], br[c]);
        } else if (ba.cs) {
            const float q = br[0];
            for (std::size_t c = 0; c < C; ++c) yr[c] = f(ar[c], q);
        } else if (bb.cs) {
            const float p = ar[0];
            for (std::size_t c = 0; c < C; ++c) yr[c] = f(p, br[c]);
        } else {
            const float v = f(ar[0], br[0]);
            for (std::size_t c = 0; c < C; ++c) yr[c] = v;
        }
    }
}

// sum_c f(g[c], o[c]) (o_full) or sum_c f(g[c], o[0]) over a row of n, in eight independent partial sums.
template <class F>
float row_reduce(const float* g, const float* o, bool o_full, std::size_t n, F f) {
    float s[8] = {};
    std::size_t c = 0;
    if (o_full) {
        for (; c + 8 <= n; c += 8)
            for (std::size_t j = 0; j < 8; ++j) s[j] += f(g[c + j], o[c + j]);
        for (; c < n; ++c) s[0] += f(g[c], o[c]);
    } else {
        const float q = o[0];
        for (; c + 8 <= n; c += 8)
            for (std::size_t j = 0; j < 8; ++j) s[j] += f(g[c + j], q);
        for (; c < n; ++c) s[0] += f(g[c], q);
    }
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

// One operand's share of a broadcasting op's backward pass (input node i): G[.] (+)= f(g[r, c], other[.]), summed
// over the dimensions along which the operand was broadcast, one row of g at a time. g is the output gradient,
// other the value the rule reads beside it (the other operand).
template <class F>
class OperandGrad {
public:
    OperandGrad(Tape& t, std::uint32_t i, const Array& g, const Array& other, F f)
        : f_(f), C_(g.shape()[1]), po_(other.data()), bo_(other) {
        const Node& n = t.at(i);
        if (!n.requires_grad) return;
        const Array& self = n.val();
        full_ = self.size() == g.size();
        if (full_) {
            G_ = acc_raw(t, i, fresh_)->data();
        } else {
            G_ = acc_buf(t, i)->data();
            const Bcast bs(self);
            row_ = bs.cs != 0;
            col_ = bs.rs != 0;
        }
    }
    // Whether the operand needs a gradient.
    explicit operator bool() const { return G_ != nullptr; }
    // Adds row r of g (gr) into the gradient.
    void row(std::size_t r, const float* gr) const {
        const std::size_t C = C_;
        const float* orow = po_ + r * bo_.rs;
        if (full_) {  // one entry of G per entry of g
            float* d = G_ + r * C;
            if (bo_.cs) {
                if (fresh_)
                    for (std::size_t c = 0; c < C; ++c) d[c] = f_(gr[c], orow[c]);
                else
                    for (std::size_t c = 0; c < C; ++c) d[c] += f_(gr[c], orow[c]);
            } else {
                const float q = orow[0];
                if (fresh_)
                    for (std::size_t c = 0; c < C; ++c) d[c] = f_(gr[c], q);
                else
                    for (std::size_t c = 0; c < C; ++c) d[c] += f_(gr[c], q);
            }
        } else if (row_) {  // self is a (1 x C) row: G[c] += f(g[r, c], o)
            if (bo_.cs)
                for (std::size_t c = 0; c < C; ++c) G_[c] += f_(gr[c], orow[c]);
            else
                for (std::size_t c = 0; c < C; ++c) G_[c] += f_(gr[c], orow[0]);
        } else {  // self is an (R x 1) column or a (1 x 1) scalar: G[r or 0] += sum_c f(g[r, c], o)
            G_[col_ ? r : 0] += row_reduce(gr, orow, bo_.cs != 0, C, f_);
        }
    }

private:
    F f_;
    std::size_t C_;
    const float* po_;
    Bcast bo_;
    float* G_ = nullptr;
    bool fresh_ = false, full_ = false, row_ = false, col_ = false;
};

// The gradient of one operand (input node i) of a broadcasting op: G[.] (+)= f(g[r, c], other[.]), summed over
// the dimensions along which the operand was broadcast. g is the output gradient, other the other operand.
template <class F>
void binary_backward(Tape& t, std::uint32_t i, const Array& g, const Array& other, F f) {
    const Node& n = t.at(i);
    if (!n.requires_grad) return;
    const float *pg = g.data(), *po = other.data();
    if (n.val().size() == g.size() && other.size() == g.size()) {  // nothing broadcast: one flat loop
        acc_map(t, i, [&](std::size_t k) { return f(pg[k], po[k]); });
        return;
    }
    const OperandGrad<F> a(t, i, g, other, f);
    const std::size_t R = g.shape()[0], C = g.shape()[1];
    for (std::size_t r = 0; r < R; ++r) a.row(r, pg + r * C);
}

// Both operands' gradients of a broadcasting op (inputs ia, ib; A and B their values), in one sweep over g when
// an operand is broadcast (a bias row, a per-row scale): each row of g is read from memory once and used for both
// while it is in cache. Computes exactly what two binary_backward calls compute (the same sums in the same order),
// and takes that way for an input used twice (ia == ib), for rows shorter than 64 (where a loop per row costs more
// than reading g twice) and when nothing is broadcast (two flat loops measured as fast).
template <class FA, class FB>
void binary_backward(Tape& t, std::uint32_t ia, std::uint32_t ib, const Array& g, const Array& A, const Array& B,
                     FA fa, FB fb) {
    const std::size_t R = g.shape()[0], C = g.shape()[1];
    if (ia == ib || C < 64 || (A.size() == g.size() && B.size() == g.size())) {
        binary_backward(t, ia, g, B, fa);
        binary_backward(t, ib, g, A, fb);
        return;
    }
    const OperandGrad<FA> a(t, ia, g, B, fa);
    const OperandGrad<FB> b(t, ib, g, A, fb);
    const float* pg = g.data();
    for (std::size_t r = 0; r < R; ++r) {
        if (a) a.row(r, pg + r * C);
        if (b) b.row(r, pg + r * C);
    }
}

// ---- whole ops

// A vectorised elementwise kernel y[k] = f(x[k]) over n entries (vmath has several).
using Kernel = void (*)(const float*, float*, std::size_t);

// y = kernel(x) elementwise with the backward rule `rule` (which reads y.grad, y.value and the input's val()).
Var unary(const char* op, Var x, Kernel kernel, BackwardFn rule);

}  // namespace xtgrad::kit
