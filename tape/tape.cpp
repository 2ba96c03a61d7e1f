#include <xtgrad/tape/tape.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <limits>

#include <fmt/core.h>

#include <xtgrad/lib/blas.hpp>
#include <xtgrad/lib/error.hpp>
#include <xtgrad/lib/parallel.hpp>
#include <xtgrad/lib/vmath.hpp>

namespace xtgrad {

Parameter::Parameter(std::string n, Array v, std::vector<std::size_t> exported)
    : name(std::move(n)), value(std::move(v)), export_shape(std::move(exported)) {
    ParameterBudget::take(value.size(), name);  // before the gradient is allocated and anything is written
    grad = Array(value.shape());
    grad.fill(0.0f);
}

Parameter::Parameter(std::string n, std::size_t rows, std::size_t cols, std::vector<std::size_t> exported)
    : name(std::move(n)), export_shape(std::move(exported)) {
    const std::size_t most = std::numeric_limits<std::size_t>::max();
    ParameterBudget::take(cols != 0 && rows > most / cols ? most : rows * cols, name);
    value = Array({rows, cols});
    grad = Array({rows, cols}, 0.0f);
}

namespace {
thread_local ParameterBudget* t_budget = nullptr;
}

ParameterBudget::ParameterBudget(std::size_t scalars, std::string what)
    : left_(scalars), what_(std::move(what)), outer_(t_budget) {
    t_budget = this;
}

ParameterBudget::~ParameterBudget() { t_budget = outer_; }

void ParameterBudget::take(std::size_t n, const std::string& name) {
    ParameterBudget* b = t_budget;
    if (!b) return;
    if (n > b->left_)
        throw FileError(fmt::format("{}: parameter '{}' needs {} values, more than the {} left of the budget", b->what_,
                                    name, n, b->left_));
    b->left_ -= n;
}

void Parameter::zero_grad() {
    if (grad.shape() != value.shape()) {
        ensure_shape(grad, shape_of(value));
        rows.valid = false;
    }
    float* g = grad.data();
    for_each_live_grad([g](std::size_t off, std::size_t n) {
        parallel_for(n, std::size_t{1} << 16, [&](std::size_t b, std::size_t e) { std::fill(g + off + b, g + off + e, 0.0f); });
    });
    grad_zeroed();
}

void Parameter::grad_zeroed() {
    if (rows.track) {
        if (rows.listed.size() != grad.shape()[0] || !rows.valid)
            rows.listed.assign(grad.shape()[0], 0);
        else
            for (std::uint32_t r : rows.list) rows.listed[r] = 0;
        rows.list.clear();
    }
    rows.valid = true;
}

void Parameter::track_grad_rows(bool on) {
    rows.track = on;
    rows.valid = false;  // until the next zero_grad proves grad zero
    if (on) {
        rows.list.clear();
        rows.listed.assign(grad.shape()[0], 0);
        rows.valid = true;
    }
}

Array& Node::fp32_grad() {
    if (param) param->grad_dense();
    Array& g = gradbuf();
    if (grad16_only) {
        ensure_shape(g, shape_of(val()));
        vmath::from_bf16(grad16.data(), g.data(), g.size());
        grad16_only = false;
    }
    return g;
}

const Array& Var::value() const {
    if (!tape) throw Error("Var: empty handle (not produced by any tape)");
    return tape->node(*this).val();
}

const Array& Var::grad() const {
    if (!tape) throw Error("Var: empty handle (not produced by any tape)");
    return tape->grad(*this);
}

Shape Var::shape() const { return shape_of(value()); }

void Tape::check(Var v, const char* op) const {
    if (v.tape != this) {
        throw Error(fmt::format("{}: input was recorded on {} tape", op, v.tape ? "another" : "no"));
    }
    if (v.generation != generation_) {
        throw Error(fmt::format(
            "{}: stale Var: it was recorded before the tape was cleared (recording {}, tape is at {})", op,
            v.generation, generation_));
    }
    if (v.index >= size_) {
        throw Error(fmt::format("{}: Var index {} is past the tape's {} nodes", op, v.index, size_));
    }
}

Node& Tape::node(Var v, const char* op) {
    check(v, op);
    return *nodes_[v.index];
}

const Node& Tape::node(Var v, const char* op) const {
    check(v, op);
    return *nodes_[v.index];
}

namespace {
double seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

void Tape::set_profiling(bool on) {
    profiling_ = on;
    last_mark_ = seconds();
}

OpTiming& Tape::timing_of(const Node& n) {
    return profile_[fmt::format("{} {}", n.op, shape_str(n.val()))];
}

void Tape::mark_forward() {
    const double now = seconds();
    if (size_ > 0 && forward_open_) {
        OpTiming& t = timing_of(*nodes_[size_ - 1]);
        t.forward_s += now - last_mark_;
        ++t.calls;
    }
    forward_open_ = false;
    last_mark_ = now;
}

Node& Tape::push(const char* op) {
    if (profiling_) {
        mark_forward();
        forward_open_ = true;
    }
    if (size_ == nodes_.size()) nodes_.push_back(std::make_unique<Node>());
    Node& n = *nodes_[size_];
    n.op = op;
    n.index = static_cast<std::uint32_t>(size_);
    n.ext_value = nullptr;
    n.ext_grad = nullptr;
    n.param = nullptr;
    n.last_leaf = false;
    n.in.clear();
    n.backward = nullptr;
    n.f0 = 0.0f;
    n.i0 = n.i1 = 0;
    n.f64 = std::numeric_limits<double>::quiet_NaN();
    n.pending = 0;
    n.requires_grad = false;
    n.grad_live = false;
    n.prec = Precision::fp32;
    n.grad16_only = false;
    ++size_;
    return n;
}

Var Tape::param(Parameter& p) {
    if (p.grad.shape() != p.value.shape()) p.zero_grad();
    Node& n = push("param");
    n.ext_value = &p.value;
    n.ext_grad = &p.grad;
    n.param = &p;
    n.requires_grad = grad_enabled_;
    n.grad_live = true;  // a parameter's gradient always holds a value: backward adds to it
    return var(n);
}

Var Tape::constant(const Array& a) {
    Node& n = push("constant");
    ensure_shape(n.value, shape_of(a));
    std::copy(a.begin(), a.end(), n.value.begin());
    return var(n);
}

Var Tape::borrow(const Array& a) {
    Node& n = push("borrow");
    n.ext_value = &a;
    return var(n);
}

Var Tape::constant(Shape s, float v) {
    Node& n = push("constant");
    ensure_shape(n.value, s);
    n.value.fill(v);
    return var(n);
}

Node& Tape::record(const char* op, std::initializer_list<Var> inputs, BackwardFn backward) {
    return record(op, inputs.begin(), inputs.size(), backward);
}

Node& Tape::record(const char* op, const std::vector<Var>& inputs, BackwardFn backward) {
    return record(op, inputs.data(), inputs.size(), backward);
}

Node& Tape::record(const char* op, const Var* inputs, std::size_t count, BackwardFn backward) {
    for (std::size_t k = 0; k < count; ++k) check(inputs[k], op);
    Node& n = push(op);
    bool needs = false;
    for (std::size_t k = 0; k < count; ++k) {
        n.in.push_back(inputs[k].index);
        needs = needs || nodes_[inputs[k].index]->requires_grad;
    }
    n.requires_grad = grad_enabled_ && needs;
    n.backward = n.requires_grad ? backward : nullptr;
    return n;
}

void Tape::backward(Var loss) {
    const Shape s = shape_of(node(loss, "backward").val());
    if (s[0] != 1 || s[1] != 1) {
        throw ShapeError(fmt::format("backward: the loss must be (1 x 1), got {}; pass a seed gradient "
                                     "for other shapes", shape_str(s)));
    }
    run_backward(loss, nullptr);
}

void Tape::backward(Var out, const Array& seed) {
    const Array& v = node(out, "backward").val();
    if (seed.shape() != v.shape()) {
        throw ShapeError(fmt::format("backward: seed gradient {} does not match the value {}", shape_str(seed),
                                     shape_str(v)));
    }
    run_backward(out, &seed);
}

void Tape::run_backward(Var out, const Array* seed) {
    Node& top = node(out, "backward");
    if (!top.requires_grad) {
        throw Error(fmt::format("backward: '{}' does not depend on any parameter (or was recorded under NoGrad)",
                                top.op));
    }
    for (std::size_t i = 0; i < size_; ++i) {
        Node& n = *nodes_[i];
        if (!n.ext_grad) n.grad_live = false;
        n.pending = 0;
        n.grad16_only = false;
    }
    Array& g = top.gradbuf();
    if (!top.ext_grad) {
        ensure_shape(g, shape_of(top.val()));
        g.fill(0.0f);
        top.grad_live = true;
    }
    if (seed) {
        for (std::size_t k = 0; k < g.size(); ++k) g.data()[k] += seed->data()[k];
    } else {
        g(0, 0) += 1.0f;  // d loss / d loss
    }
    deferred_.clear();
    stacking_ = StackingStats{};
    mark_last_leaves(out.index);
    // A node's deferred products are added before its rule reads its gradient; a parameter's once the pass has
    // gone past its first leaf (no rule can add to it after that), where its gradient is final.
    if (profiling_) {
        mark_forward();
        OpTiming& stacked = profile_["(deferred weight gradients)"];
        for (std::size_t i = out.index + 1; i-- > 0;) {
            Node& n = *nodes_[i];
            if (n.pending) {
                const double t0 = seconds();
                flush_deferred(&n.grad);
                stacked.backward_s += seconds() - t0;
            }
            if (n.last_leaf) {
                const double t0 = seconds();
                param_final(n);
                stacked.backward_s += seconds() - t0;
            }
            if (!n.backward || !n.grad_live) continue;
            const double t0 = seconds();
            n.backward(*this, n);
            timing_of(n).backward_s += seconds() - t0;
        }
        const double t0 = seconds();
        flush_all_deferred();
        stacked.backward_s += seconds() - t0;
        last_mark_ = seconds();
        return;
    }
    for (std::size_t i = out.index + 1; i-- > 0;) {
        Node& n = *nodes_[i];
        if (n.pending) flush_deferred(&n.grad);
        if (n.backward && n.grad_live) n.backward(*this, n);
        if (n.last_leaf) param_final(n);
    }
    flush_all_deferred();
}

void Tape::mark_last_leaves(std::size_t top) {
    leaves_.clear();
    for (std::size_t i = 0; i <= top; ++i) {
        Node& n = *nodes_[i];
        n.last_leaf = false;
        if (n.param && n.requires_grad) leaves_.emplace_back(n.param, n.index);
    }
    std::sort(leaves_.begin(), leaves_.end());  // by parameter, then position: each parameter's first leaf leads
    for (std::size_t k = 0; k < leaves_.size(); ++k)
        if (k == 0 || leaves_[k].first != leaves_[k - 1].first) nodes_[leaves_[k].second]->last_leaf = true;
}

void Tape::param_final(Node& leaf) {
    flush_deferred(leaf.ext_grad);
    if (grad_final_) grad_final_(*leaf.param);
}

void Tape::defer_weight_grad(Node& target, const Array& A, const Array& B) {
    if (!target.requires_grad) return;
    if (!target.ext_grad) ++target.pending;  // a parameter's products wait for its first leaf
    deferred_.push_back({&target.gradbuf(), &target, &A, &B});
    ++stacking_.products;
}

void Tape::flush_deferred(Array* grad) {
    // Stack the rows of every pending product into grad (in the order they came) and multiply once.
    std::size_t first = deferred_.size(), count = 0, rows = 0;
    for (std::size_t k = 0; k < deferred_.size(); ++k) {
        if (deferred_[k].grad != grad) continue;
        first = std::min(first, k);
        ++count;
        rows += deferred_[k].A->shape()[0];
    }
    if (count == 0) return;
    Node& target = *deferred_[first].node;
    target.fp32_grad();
    float beta = 1.0f;
    if (!target.grad_live) {  // no rule has written it yet: the product assigns
        ensure_shape(*grad, shape_of(target.val()));
        target.grad_live = true;
        beta = 0.0f;
    }
    ++stacking_.gemms;
    if (count == 1) {
        Deferred& d = deferred_[first];
        gemm("deferred weight gradient", cmat(*d.A), true, cmat(*d.B), false, mat(*grad), 1.0f, beta);
        d.grad = nullptr;
        target.pending = 0;
        return;
    }
    ++stacking_.stacked;
    const std::size_t N = deferred_[first].A->shape()[1], K = deferred_[first].B->shape()[1];
    pack_a_.resize(rows * N);  // never shrinks its capacity: no allocation in steady state
    pack_b_.resize(rows * K);
    std::size_t at = 0;
    for (std::size_t k = first; k < deferred_.size(); ++k) {
        Deferred& d = deferred_[k];
        if (d.grad != grad) continue;
        if (d.A->shape()[1] != N || d.B->shape()[1] != K || d.B->shape()[0] != d.A->shape()[0]) {
            throw ShapeError(fmt::format("deferred weight gradient of '{}': products {}^T {} and {}^T {} do not stack",
                                         target.op, shape_str(*deferred_[first].A), shape_str(*deferred_[first].B),
                                         shape_str(*d.A), shape_str(*d.B)));
        }
        std::copy(d.A->begin(), d.A->end(), pack_a_.data() + at * N);
        std::copy(d.B->begin(), d.B->end(), pack_b_.data() + at * K);
        at += d.A->shape()[0];
        d.grad = nullptr;
    }
    target.pending = 0;
    gemm("deferred weight gradient", ConstMat{pack_a_.data(), rows, N, N}, true, ConstMat{pack_b_.data(), rows, K, K},
         false, mat(*grad), 1.0f, beta);
}

void Tape::flush_all_deferred() {
    for (std::size_t k = 0; k < deferred_.size(); ++k)
        if (deferred_[k].grad) flush_deferred(deferred_[k].grad);
    deferred_.clear();
}

std::size_t Tape::next_scratch_slot() {
    static std::atomic<std::size_t> next{0};
    return next++;
}

void Tape::clear() {
    if (profiling_) mark_forward();
    for (auto& pool : scratch_)
        if (pool) pool->used = 0;
    bf16_used_ = 0;
    size_ = 0;
    ++generation_;
}

std::size_t Tape::recorded_ops() const {
    std::size_t k = 0;
    for (std::size_t i = 0; i < size_; ++i) k += nodes_[i]->backward != nullptr;
    return k;
}

const Array& Tape::grad(Var v) {
    Node& n = node(v);
    if (n.ext_grad) return *n.ext_grad;
    if (!n.grad_live) {
        ensure_shape(n.grad, shape_of(n.val()));
        n.grad.fill(0.0f);
        n.grad_live = true;
    }
    return n.fp32_grad();
}

ConstMat16 Tape::bf16_of(const Array& a) {
    const std::size_t rows = a.shape()[0], cols = a.shape()[1];
    for (std::size_t k = 0; k < bf16_used_; ++k) {
        const Bf16Copy& c = bf16_copies_[k];
        if (c.src == a.data() && c.size == a.size()) return {c.data.data(), rows, cols, cols};
    }
    if (bf16_used_ == bf16_copies_.size()) bf16_copies_.emplace_back();
    Bf16Copy& c = bf16_copies_[bf16_used_++];
    c.src = a.data();
    c.size = a.size();
    c.data.resize(a.size());  // the same sizes in the same order each recording: no allocation in steady state
    vmath::to_bf16(a.data(), c.data.data(), a.size());
    return {c.data.data(), rows, cols, cols};
}

Array detach(Var v) { return v.value(); }

}  // namespace xtgrad
