// The tape: an append-only list of recorded ops (a Wengert list) and one reverse pass over it.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <xtgrad/lib/array.hpp>
#include <xtgrad/lib/blas.hpp>

namespace xtgrad {

class Tape;
struct Node;

// A trainable array and the gradient accumulated into it; owned by a layer, never by a tape.
struct Parameter {
    std::string name;                       // stable dotted name, e.g. "rnn.weight_ih_l0"
    Array value;                            // the weights
    Array grad;                             // dLoss/dvalue, accumulated by every backward pass
    std::vector<std::size_t> export_shape;  // shape as saved to files (e.g. PyTorch's 1-D bias); empty: value's

    // Which rows of grad can be non-zero, for a parameter whose gradient reaches few rows (an embedding table, whose
    // layer turns `track` on). While `valid`, every row not in `list` is exactly zero: zero_grad, clipping and
    // plain SGD then touch the listed rows only. The tape keeps it (a lookup lists its rows; any other write into
    // grad makes it dense: valid = false until the next zero_grad). Code that writes grad itself calls grad_dense().
    struct GradRows {
        bool track = false;
        bool valid = true;
        std::vector<std::uint32_t> list;   // rows that may be non-zero, in the order first reached
        std::vector<std::uint8_t> listed;  // per row: in list
    } rows;

    Parameter() = default;
    // A named parameter with the given value and a zero gradient of the same shape.
    Parameter(std::string n, Array v, std::vector<std::size_t> exported = {});
    // A named (rows x cols) parameter, its value uninitialised (fill it), its gradient zero; checked against the
    // ParameterBudget before anything is allocated.
    Parameter(std::string n, std::size_t rows, std::size_t cols, std::vector<std::size_t> exported = {});

    // Sets the gradient to zero (keeps its buffer; only the listed rows when rows are tracked and valid).
    void zero_grad();
    // Number of scalars.
    std::size_t size() const { return value.size(); }

    // Calls f(offset, count) over the spans of grad (and of value, at the same offsets) that can hold a non-zero
    // gradient: the listed rows, or the whole array.
    template <class F>
    void for_each_live_grad(F f) const {
        const std::size_t cols = grad.shape()[1];
        if (rows.track && rows.valid)
            for (std::uint32_t r : rows.list) f(static_cast<std::size_t>(r) * cols, cols);
        else
            f(std::size_t{0}, grad.size());
    }
    // Lists row r of grad as possibly non-zero (a row-scatter into a tracked gradient).
    void note_grad_row(std::size_t r) {
        if (rows.listed[r]) return;
        rows.listed[r] = 1;
        rows.list.push_back(static_cast<std::uint32_t>(r));
    }
    // Says that grad was written outside its listed rows: every row may be non-zero until zero_grad().
    void grad_dense() { rows.valid = false; }
    // Says that every live span of grad was just set to zero (by an optimiser's fused step): grad is all zero.
    void grad_zeroed();
    // Turns row tracking on or off (on: grad must be all zero, as after zero_grad()).
    void track_grad_rows(bool on);
};

// While alive, bounds the scalars of the Parameters constructed on this thread: the one that would go past
// `scalars` throws FileError "<what>: ... parameter '<name>' ...". A model read from a file is built under the
// budget of what the file holds, so a file claiming a huge architecture is refused at its first oversized
// parameter, whose (uninitialised) memory was never touched. Budgets nest; the innermost applies.
class ParameterBudget {
public:
    ParameterBudget(std::size_t scalars, std::string what);
    ~ParameterBudget();
    ParameterBudget(const ParameterBudget&) = delete;
    ParameterBudget& operator=(const ParameterBudget&) = delete;
    // Counts a new parameter of n scalars against the innermost budget, if any.
    static void take(std::size_t n, const std::string& name);

private:
    std::size_t left_;
    std::string what_;
    ParameterBudget* outer_;
};

// A handle to one value recorded on a tape: which tape, which node, which recording.
// Cheap to copy; using it after its tape was cleared throws instead of reading stale data.
struct Var {
    Tape* tape = nullptr;
    std::uint32_t index = 0;
    std::uint32_t generation = 0;

    // The forward value.
    const Array& value() const;
    // The gradient after backward (zeros where no gradient arrived).
    const Array& grad() const;
    // Rows and columns of the value.
    Shape shape() const;
    std::size_t rows() const { return shape()[0]; }
    std::size_t cols() const { return shape()[1]; }
};

// A backward rule: reads the node's gradient and accumulates into its inputs' gradients.
using BackwardFn = void (*)(Tape&, Node&);

// One recorded op: its output value, its gradient, its inputs and the data its backward rule needs.
// Nodes are pooled by the tape: after clear() their buffers are reused, so a steady-state step allocates nothing.
struct Node {
    const char* op = "";                  // op name, for error messages
    std::uint32_t index = 0;              // position on the tape
    Array value;                          // forward value (unused for parameter leaves)
    Array grad;                           // gradient (unused for parameter leaves)
    Array aux;                            // per-op saved data (dropout mask, log-sum-exp, ...)
    Array scratch;                        // per-op temporary used by backward
    const Array* ext_value = nullptr;     // parameter or borrowed leaf: the array it reads
    Array* ext_grad = nullptr;            // parameter leaf: the parameter's gradient
    Parameter* param = nullptr;           // parameter leaf: the parameter
    std::vector<std::uint32_t> in;        // input node indices
    Ids ids;                              // integer data (targets, gathered ids)
    BackwardFn backward = nullptr;        // null for leaves and for nodes needing no gradient
    float f0 = 0.0f;                      // scalar attribute (scale factor, dropout rate, ...)
    long i0 = 0, i1 = 0;                  // integer attributes (slice bounds, ignored id, ...)
    double f64 = std::numeric_limits<double>::quiet_NaN();  // a (1 x 1) result before rounding to float (NaN: none)
    std::uint32_t pending = 0;            // deferred weight-gradient products not yet added into grad
    bool requires_grad = false;           // some input depends on a parameter
    bool grad_live = false;               // grad holds a value (it is initialised on first accumulation)
    bool last_leaf = false;               // the parameter's first leaf: once backward passed it, its gradient is final
    Precision prec = Precision::fp32;     // the precision of the node's matrix products (bf16 on a bf16 tape)
    bool grad16_only = false;             // the gradient lives in grad16 only (cross_entropy wrote it so)
    std::vector<bf16> grad16;             // the gradient in bf16, for the products of a bf16 node's rule

    // The forward value, wherever it is stored.
    const Array& val() const { return ext_value ? *ext_value : value; }
    // The gradient buffer, wherever it is stored.
    Array& gradbuf() { return ext_grad ? *ext_grad : grad; }
    // The gradient buffer for fp32 rules: widened from grad16 first if the gradient lives there; a parameter's marked
    // dense (Parameter::grad_dense), as any rule may write all of it.
    Array& fp32_grad();
};

// Time spent in one kind of op, collected when a tape profiles (see Tape::set_profiling).
struct OpTiming {
    double forward_s = 0.0;   // from the op's record() to the next one: its forward pass and the caller's code
    double backward_s = 0.0;  // its backward rule
    std::size_t calls = 0;
};

// Records ops in execution order and runs backward as one reverse loop. Several tapes may coexist.
class Tape {
public:
    Tape() = default;
    Tape(const Tape&) = delete;
    Tape& operator=(const Tape&) = delete;

    // A leaf that reads p.value and accumulates its gradient into p.grad.
    Var param(Parameter& p);
    // A leaf holding a copy of a, carrying no gradient.
    Var constant(const Array& a);
    // A leaf that reads a in place (no copy), carrying no gradient. a must stay alive and unchanged until the tape
    // is cleared (the end of backward at the latest): for constants that live across steps and windows.
    Var borrow(const Array& a);
    // A leaf of the given shape filled with v, carrying no gradient.
    Var constant(Shape s, float v);

    // Appends a node for an op (used by op implementations): inputs are checked to belong to this
    // tape and its current recording; the node requires grad when recording is on and some input does.
    Node& record(const char* op, std::initializer_list<Var> inputs, BackwardFn backward);
    // The same with a variable number of inputs.
    Node& record(const char* op, const std::vector<Var>& inputs, BackwardFn backward);
    Node& record(const char* op, const Var* inputs, std::size_t count, BackwardFn backward);

    // Reverse pass from a (1 x 1) loss: gradients reach every node and every parameter used.
    void backward(Var loss);
    // Reverse pass from any value, with its gradient given (same shape as the value).
    void backward(Var out, const Array& seed);

    // Called by backward once per parameter with a leaf in the pass, as soon as that parameter's gradient is final:
    // the reverse pass has gone past all of its leaves and added its stacked weight-gradient products, so nothing
    // of this pass writes it any more. Parameters become final in reverse order of first use (the decoder's before
    // the embedding's). A data-parallel trainer starts reducing a gradient there while backward goes on. The hook
    // must not record on or clear this tape. An empty function removes it (the default: nothing is called).
    using GradFinalHook = std::function<void(Parameter&)>;
    void on_param_grad_final(GradFinalHook hook) { grad_final_ = std::move(hook); }

    // Forgets every recorded op (handles become stale); node buffers are kept for reuse.
    void clear();

    // Whether ops record backward rules (false inside a NoGrad scope).
    bool grad_enabled() const { return grad_enabled_; }
    void set_grad_enabled(bool on) { grad_enabled_ = on; }

    // Mixed precision: on a bf16 tape, every matrix product over more than kit::kStepRows rows (a window's input
    // projection, the decoder, the adaptive softmax's products; not a recurrent step's) and the two products of its
    // backward rule take bf16 operands, with fp32 products, sums, results, weights and gradients (Precision::bf16);
    // fp32 (the default) leaves every product as it was. Ops record the precision when they are recorded. The bf16
    // copy of a parameter is made once per recording: change parameters only between recordings (as a training loop
    // does: backward, update, clear).
    void set_precision(Precision p) { precision_ = p; }
    Precision precision() const { return precision_; }
    // A bf16 copy of an array that stays unchanged until clear() (a parameter's value, a node's value), made on the
    // first request of the recording and kept until clear(): a weight used by forward and backward is converted once.
    ConstMat16 bf16_of(const Array& a);

    // Nodes recorded since the last clear().
    std::size_t size() const { return size_; }
    // Nodes recorded since the last clear() that carry a backward rule.
    std::size_t recorded_ops() const;
    // Profiling: when on, times every op's forward and backward pass, keyed "op (rows x cols)" by output shape.
    void set_profiling(bool on);
    // The timings collected so far, and forgetting them.
    const std::map<std::string, OpTiming>& profile() const { return profile_; }
    void reset_profile() { profile_.clear(); }

    // Nodes the pool holds (recorded or kept for reuse): flat in steady state.
    std::size_t pool_size() const { return nodes_.size(); }
    // Counts clear() calls; part of every Var so that stale handles are caught.
    std::uint32_t generation() const { return generation_; }

    // The node behind a handle; throws Error naming `op` for a stale or foreign handle.
    Node& node(Var v, const char* op = "Tape::node");
    const Node& node(Var v, const char* op = "Tape::node") const;
    // The node at a position of the current recording (used by backward rules).
    Node& at(std::uint32_t i) { return *nodes_[i]; }
    // The handle of a node of the current recording.
    Var var(const Node& n) { return Var{this, n.index, generation_}; }

    // Gradient of a node; zeros when no gradient reached it.
    const Array& grad(Var v);

    // Scratch storage for modules and ops that lives until clear(): the k-th request for a T after a clear() gets
    // the same pooled object as the k-th request of the previous recording (contents and capacity kept), so
    // layers keep no per-call buffers of their own (one layer can run on several tapes at once) and a steady
    // state allocates nothing. Default-constructed on first use; the caller resizes or overwrites it.
    template <class T>
    T& scratch() {
        const std::size_t slot = scratch_slot<T>();
        if (slot >= scratch_.size()) scratch_.resize(slot + 1);
        if (!scratch_[slot]) scratch_[slot] = std::make_unique<ScratchPool<T>>();
        auto& pool = static_cast<ScratchPool<T>&>(*scratch_[slot]);
        if (pool.used == pool.items.size()) pool.items.push_back(std::make_unique<T>());
        return *pool.items[pool.used++];
    }

    // Used by backward rules (through kit::acc_weight_grad): adds A^T B into the gradient of `target`, later, together
    // with the other such products for the same gradient, as one matrix product of the stacked rows of A and of B
    // (a recurrent weight used by T steps gets one sgemm instead of T). A node's products are added right before
    // its own backward rule runs; a parameter's (over all its leaves) when the pass reaches its first leaf. A and B must stay
    // unchanged until then (node values and gradients of the current recording do).
    void defer_weight_grad(Node& target, const Array& A, const Array& B);

    // What weight-gradient stacking did in the last backward pass.
    struct StackingStats {
        std::size_t products = 0;  // deferred products A^T B
        std::size_t gemms = 0;     // sgemm calls they were added with (products - gemms were saved)
        std::size_t stacked = 0;   // of those calls, the ones that stacked two or more products
    };
    const StackingStats& stacking_stats() const { return stacking_; }

private:
    struct ScratchPoolBase {
        virtual ~ScratchPoolBase() = default;
        std::size_t used = 0;
    };
    template <class T>
    struct ScratchPool : ScratchPoolBase {
        std::vector<std::unique_ptr<T>> items;
    };
    static std::size_t next_scratch_slot();
    template <class T>
    static std::size_t scratch_slot() {
        static const std::size_t slot = next_scratch_slot();
        return slot;
    }
    std::vector<std::unique_ptr<ScratchPoolBase>> scratch_;  // one pool per type

    Node& push(const char* op);
    void run_backward(Var out, const Array* seed);
    void check(Var v, const char* op) const;

    std::vector<std::unique_ptr<Node>> nodes_;  // pool; the first size_ are the current recording
    std::size_t size_ = 0;
    std::uint32_t generation_ = 1;
    bool grad_enabled_ = true;

    struct Deferred {
        Array* grad;         // where the product goes (a node's grad or a parameter's); null once added
        Node* node;          // the node whose rule deferred it is an input of: its grad_live says assign or add
        const Array* A;      // grad += A^T B
        const Array* B;
    };
    void flush_deferred(Array* grad);            // adds every pending product into grad, stacked
    void flush_all_deferred();                   // the remaining ones, at the end of the pass
    void mark_last_leaves(std::size_t top);      // sets last_leaf on each parameter's first leaf in [0, top]
    void param_final(Node& leaf);                // a parameter's last leaf passed: its products, then the hook
    std::vector<std::pair<Parameter*, std::uint32_t>> leaves_;  // capacity kept across passes
    GradFinalHook grad_final_;
    std::vector<Deferred> deferred_;             // capacity kept across passes
    std::vector<float> pack_a_, pack_b_;         // stacked rows of one gradient's products (capacity kept)
    StackingStats stacking_;

    Precision precision_ = Precision::fp32;
    struct Bf16Copy {
        const float* src = nullptr;
        std::size_t size = 0;
        std::vector<bf16> data;                  // capacity kept across recordings
    };
    std::vector<Bf16Copy> bf16_copies_;          // the first bf16_used_ belong to the current recording
    std::size_t bf16_used_ = 0;

    void mark_forward();                         // charges the time since the last mark to the last node
    OpTiming& timing_of(const Node& n);
    bool profiling_ = false;
    bool forward_open_ = false;  // the last node's forward time is not charged yet
    double last_mark_ = 0.0;
    std::map<std::string, OpTiming> profile_;
};

// Turns recording off on a tape for a scope (evaluation): ops compute values and record no backward rules.
class NoGrad {
public:
    explicit NoGrad(Tape& t) : tape_(t), prev_(t.grad_enabled()) { t.set_grad_enabled(false); }
    ~NoGrad() { tape_.set_grad_enabled(prev_); }
    NoGrad(const NoGrad&) = delete;
    NoGrad& operator=(const NoGrad&) = delete;

private:
    Tape& tape_;
    bool prev_;
};

// A copy of a value, cut from the tape (safe to keep after clear()).
Array detach(Var v);

}  // namespace xtgrad
