// The differentiable ops of xtgrad. Each is defined once, in tape/ops.cpp, forward and backward side by side.
// Shapes: every value is a 2-D (rows x cols) matrix; B = batch, H = hidden, V = vocabulary, E = embedding.
#pragma once

#include <vector>

#include <xtgrad/lib/rng.hpp>
#include <xtgrad/tape/tape.hpp>

namespace xtgrad {

// ---- elementwise, with broadcasting of a size-1 dimension ((1 x N) bias rows, (M x 1) columns, (1 x 1))

// y = a + b
Var add(Var a, Var b);
// y = a - b
Var sub(Var a, Var b);
// y = a * b (elementwise)
Var mul(Var a, Var b);
// y = a / b (elementwise)
Var div(Var a, Var b);
// y = a + b * c (elementwise, each broadcastable): a multiply-add in one op
Var addcmul(Var a, Var b, Var c);
// y = c * x
Var scale(Var x, float c);
// y = x + c
Var add_scalar(Var x, float c);
// y = -x
Var neg(Var x);

// ---- matrix products (BLAS sgemm)

// y = a b            a: (M x K), b: (K x N) -> (M x N)   (b's gradient is stacked across steps, a's is not)
Var matmul(Var a, Var b);
// y = a b^T          a: (M x K), b: (N x K) -> (M x N)
Var matmul_t(Var a, Var b);
// y = x W^T + b      x: (M x K), W: (N x K) (PyTorch's (out x in) layout), b: (1 x N) -> (M x N)
Var affine(Var x, Var W, Var b);

// ---- nonlinearities (vectorised)

// y = 1 / (1 + exp(-x))
Var sigmoid(Var x);
// y = tanh(x)
Var tanh(Var x);
// y = max(x, 0)
Var relu(Var x);
// y = exp(x)
Var exp(Var x);
// y = log(x)
Var log(Var x);
// y = sqrt(x)
Var sqrt(Var x);
// y = 1 / sqrt(x)
Var rsqrt(Var x);
// y = x^p (x > 0 unless p is an integer); p = 2 is a fused square
Var pow(Var x, float p);
// y = x^2 (pow(x, 2): one pass forward, one backward)
inline Var square(Var x) { return pow(x, 2.0f); }

// ---- reductions

// y = sum of all entries -> (1 x 1)
Var sum(Var x);
// y = mean of all entries -> (1 x 1)
Var mean(Var x);
// Sum along an axis, keeping the dimension: axis 1 sums each row (M x N) -> (M x 1), axis 0 each column -> (1 x N)
Var sum(Var x, int axis);
// Mean along an axis, keeping the dimension: axis 1 -> (M x 1), axis 0 -> (1 x N)
Var mean(Var x, int axis);
// Biased variance along an axis (mean of squared deviations from the axis's mean), keeping the dimension:
// axis 1 -> (M x 1), axis 0 -> (1 x N)
Var var(Var x, int axis);
// Maximum along an axis, keeping the dimension: axis 1 -> (M x 1), axis 0 -> (1 x N); the gradient goes to the
// first maximal entry
Var max(Var x, int axis);
// y = sum of x where mask is 1 -> (1 x 1); mask: 0/1 entries, broadcast to x ((M x 1) per-row, (M x N), ...)
Var masked_sum(Var x, Var mask);
// y = mean of x over the entries where mask is 1 (0 if none) -> (1 x 1); mask as in masked_sum
Var masked_mean(Var x, Var mask);

// ---- slicing and joining (copies)

// y = x[:, c0:c1]
Var cols(Var x, std::size_t c0, std::size_t c1);
// y = x[r0:r1, :]
Var rows(Var x, std::size_t r0, std::size_t r1);
// y = [x0 x1 ...] side by side; all inputs have the same rows
Var concat_cols(const std::vector<Var>& xs);
// y = [x0; x1; ...] stacked; all inputs have the same cols
Var concat_rows(const std::vector<Var>& xs);
// y = x^T            (M x N) -> (N x M)
Var transpose(Var x);

// ---- attention over k states kept side by side in a memory row m = [s_1 s_2 ... s_k]: (B x k*H)

// Scores: y[b, j] = q[b, :] . m[b, jH:(j+1)H]      q: (B x H), m: (B x k*H) -> (B x k)
// With m (B x H) (k = 1) this is the per-row dot product -> (B x 1).
Var block_dot(Var q, Var m);
// Context: y[b, :] = sum_j w[b, j] m[b, jH:(j+1)H]  w: (B x k), m: (B x k*H) -> (B x H)
Var block_mix(Var w, Var m);

// ---- selection by a 0/1 mask (exact copies; no gradient flows into a mask)

// y = mask ? a : b entrywise; mask, a, b broadcastable (a (B x 1) mask selects whole rows) -> broadcast shape
Var where(Var mask, Var a, Var b);
// y = mask ? v : x entrywise; mask broadcast to x
Var masked_fill(Var x, Var mask, float v);

// ---- embedding lookup

// y[i, :] = table[ids[i], :]    table: (V x E), ids in [0, V) -> (n x E); backward scatters into the used rows
Var gather(Var table, const Ids& ids);

// ---- regularisation

// Inverted dropout: y = x * m / (1 - p), m ~ Bernoulli(1 - p) a function of (key.seed, global row, column)
// (fill_dropout_mask), so that a batch split between processes draws the same masks; 0 <= p < 1 (p = 0 returns x)
Var dropout(Var x, float p, const MaskKey& key);
// The same keyed by one draw from rng, each row its own (a weight's DropConnect, a value of the whole batch); no
// draw when p = 0
Var dropout(Var x, float p, Rng& rng);
// A constant mask of the given shape with entries 0 or 1/(1-p): multiply several values by it to share one
// mask (variational dropout across time steps)
Var dropout_mask(Tape& t, Shape s, float p, const MaskKey& key);
Var dropout_mask(Tape& t, Shape s, float p, Rng& rng);

// ---- softmax and loss

// y = x - logsumexp(x) per row
Var log_softmax(Var x);
// y = exp(x) / sum exp(x) per row (composed: exp(log_softmax(x)))
Var softmax(Var x);

// How cross_entropy reduces over tokens.
enum class Reduction { mean, sum };

// Fused softmax cross-entropy: -log softmax(logits)[i, targets[i]], reduced over the rows whose target is not
// ignore_index (mean divides by their count). logits: (n x V), targets: n ids in [0, V) -> (1 x 1)
Var cross_entropy(Var logits, const Ids& targets, Reduction reduction = Reduction::mean, int ignore_index = -1);

// ---- operator sugar for cells written as expressions

inline Var operator+(Var a, Var b) { return add(a, b); }
inline Var operator-(Var a, Var b) { return sub(a, b); }
inline Var operator*(Var a, Var b) { return mul(a, b); }
inline Var operator/(Var a, Var b) { return div(a, b); }
inline Var operator/(Var x, float c) { return scale(x, 1.0f / c); }
inline Var operator-(Var x) { return neg(x); }
inline Var operator*(float c, Var x) { return scale(x, c); }
inline Var operator*(Var x, float c) { return scale(x, c); }
inline Var operator+(Var x, float c) { return add_scalar(x, c); }
inline Var operator+(float c, Var x) { return add_scalar(x, c); }
inline Var operator-(Var x, float c) { return add_scalar(x, -c); }
inline Var operator-(float c, Var x) { return add_scalar(neg(x), c); }

}  // namespace xtgrad
