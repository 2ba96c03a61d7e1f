#include <xtgrad/tape/op_kit.hpp>

#include <fmt/core.h>

#include <xtgrad/lib/error.hpp>
#include <xtgrad/lib/vmath.hpp>
#include <xtgrad/lib/vmath.hpp>

namespace xtgrad::kit {

Tape& tape_of(const char* op, Var v) {
    if (!v.tape) throw Error(fmt::format("{}: empty Var (not produced by any tape)", op));
    return *v.tape;
}

const Array& val(Tape& t, Var v, const char* op) { return t.node(v, op).val(); }

Shape broadcast_shape(const char* op, Shape a, Shape b) {
    Shape s{};
    for (int d = 0; d < 2; ++d) {
        const std::size_t x = a[d], y = b[d];
        if (x != y && x != 1 && y != 1) {
            throw ShapeError(fmt::format("{}: shapes {} and {} do not broadcast (dim {} is {} vs {})", op,
                                         shape_str(a), shape_str(b), d, x, y));
        }
        s[d] = x == 1 ? y : x;
    }
    return s;
}

void check_same_shape(const char* op, const Array& a, const Array& b) {
    if (a.shape() != b.shape())
        throw ShapeError(fmt::format("{}: shapes {} and {} differ (want the same shape)", op, shape_str(a),
                                     shape_str(b)));
}

void check_range(const char* op, const char* what, std::size_t lo, std::size_t hi, std::size_t n, const Array& x) {
    if (!(lo < hi && hi <= n)) {
        throw IndexError(fmt::format("{}: {} range [{}, {}) is empty or outside [0, {}) of {}", op, what, lo, hi, n,
                                     shape_str(x)));
    }
}

void check_axis(const char* op, int axis) {
    if (axis != 0 && axis != 1)
        throw ShapeError(fmt::format("{}: axis {} is neither 0 (reduce down the rows: M x N -> 1 x N) nor 1 "
                                     "(reduce along each row: M x N -> M x 1)",
                                     op, axis));
}

void check_mask(const char* op, const Array& m) {
    const float* p = m.data();
    const std::size_t C = m.shape()[1];
    for (std::size_t k = 0; k < m.size(); ++k) {
        if (p[k] != 0.0f && p[k] != 1.0f)
            throw Error(fmt::format("{}: mask entry [{}, {}] of {} is {}, not 0 or 1", op, k / C, k % C, shape_str(m),
                                    p[k]));
    }
}

Array* acc_buf(Tape& t, std::uint32_t i) {
    Node& n = t.at(i);
    if (!n.requires_grad) return nullptr;
    Array& g = n.fp32_grad();
    if (!n.grad_live) {
        ensure_shape(g, shape_of(n.val()));
        g.fill(0.0f);
        n.grad_live = true;
    }
    return &g;
}

Array* acc_raw(Tape& t, std::uint32_t i, bool& fresh) {
    Node& n = t.at(i);
    fresh = false;
    if (!n.requires_grad) return nullptr;
    Array& g = n.fp32_grad();
    if (!n.grad_live) {
        ensure_shape(g, shape_of(n.val()));
        n.grad_live = true;
        fresh = true;
    }
    return &g;
}

void acc_rows(Tape& t, std::uint32_t i, const Ids& rows, const Array& g) {
    Node& n = t.at(i);
    if (!n.requires_grad) return;
    Parameter* p = n.param;
    const bool sparse = p && p->rows.track && p->rows.valid && p->rows.listed.size() == p->grad.shape()[0];
    Array* G = sparse ? &p->grad : acc_buf(t, i);
    const std::size_t E = g.shape()[1];
    for (std::size_t k = 0; k < rows.size(); ++k) {
        const auto r = static_cast<std::size_t>(rows[k]);
        vmath::axpy(1.0f, g.data() + k * E, G->data() + r * E, E);
        if (sparse) p->note_grad_row(r);
    }
}

void acc_gemm(Tape& t, std::uint32_t i, const char* who, ConstMat A, bool transA, ConstMat B, bool transB) {
    bool fresh;
    Array* G = acc_raw(t, i, fresh);
    if (G) gemm(who, A, transA, B, transB, mat(*G), 1.0f, fresh ? 0.0f : 1.0f);
}

void acc_gemm(Tape& t, std::uint32_t i, const char* who, ConstMat16 A, bool transA, ConstMat16 B, bool transB) {
    bool fresh;
    Array* G = acc_raw(t, i, fresh);
    if (G) gemm(who, A, transA, B, transB, mat(*G), 1.0f, fresh ? 0.0f : 1.0f);
}

Precision product_precision(Tape& t, std::size_t rows) {
    return t.precision() == Precision::bf16 && rows > kStepRows ? Precision::bf16 : Precision::fp32;
}

ConstMat16 grad_bf16(Node& y) {
    const std::size_t rows = y.value.shape()[0], cols = y.value.shape()[1];
    if (!y.grad16_only) {
        y.grad16.resize(y.grad.size());  // capacity kept: no allocation in steady state
        vmath::to_bf16(y.grad.data(), y.grad16.data(), y.grad.size());
    }
    return {y.grad16.data(), rows, cols, cols};
}

bf16* acc_raw16(Tape& t, std::uint32_t i) {
    Node& n = t.at(i);
    if (!n.requires_grad || n.grad_live || n.ext_grad || n.prec != Precision::bf16) return nullptr;
    n.grad16.resize(n.val().size());
    n.grad_live = true;
    n.grad16_only = true;
    return n.grad16.data();
}

void acc_weight_grad(Tape& t, std::uint32_t i, const char* who, const Array& A, const Array& B) {
    Node& n = t.at(i);
    if (!n.requires_grad) return;
    if (A.shape()[0] <= kStepRows) {  // a recurrent step's batch; larger products gain nothing from stacking
        const Shape want = shape_of(n.val());
        if (A.shape()[0] != B.shape()[0] || A.shape()[1] != want[0] || B.shape()[1] != want[1])
            throw ShapeError(fmt::format("{}: weight gradient {}^T {} does not fit {}", who, shape_str(A),
                                         shape_str(B), shape_str(want)));
        t.defer_weight_grad(n, A, B);
        return;
    }
    acc_gemm(t, i, who, cmat(A), true, cmat(B), false);
}

Var unary(const char* op, Var x, Kernel kernel, BackwardFn rule) {
    Tape& t = tape_of(op, x);
    const Array& X = val(t, x, op);
    Node& y = t.record(op, {x}, rule);
    kernel(X.data(), out(y, shape_of(X)).data(), X.size());
    return t.var(y);
}

}  // namespace xtgrad::kit
