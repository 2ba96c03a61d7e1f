// Adaptive softmax (Grave et al., 2017), PyTorch's nn.AdaptiveLogSoftmaxWithLoss: frequent words in a head,
// rare words in tail clusters behind smaller projections. Composed from tape ops (gather, matmul_t,
// cross_entropy), so it is gradient-checked like any layer and needs no backward of its own.
#pragma once

#include <vector>

#include <xtgrad/layers/module.hpp>
#include <xtgrad/lib/rng.hpp>
#include <xtgrad/tape/ops.hpp>

namespace xtgrad {

// The output layer of a language model over `vocab` classes ordered by frequency rank: classes [0, cutoffs[0])
// are in the head; cluster i holds [cutoffs[i], cutoffs[i+1]) (the last ends at vocab) behind a projection to
// in / div^(i+1) features. `order` maps a token id to its rank (empty: ids are ranks already); it must be a
// permutation of [0, vocab). Keeps no per-call state.
class AdaptiveSoftmax : public Module {
public:
    // Parameters `<name>.head.weight` (cutoffs[0] + clusters x in), `<name>.tail.<i>.0.weight`
    // (in/div^(i+1) x in) and `<name>.tail.<i>.1.weight` (cluster size x in/div^(i+1)), no biases, as PyTorch's.
    AdaptiveSoftmax(const std::string& name, std::size_t in, std::size_t vocab, std::vector<std::size_t> cutoffs,
                    float div, Rng& rng, std::vector<std::int32_t> order = {});

    // The summed (Reduction::sum) or mean negative log-likelihood of targets given h (n x in) -> (1 x 1).
    Var loss(Var h, const Ids& targets, Reduction reduction = Reduction::mean);
    // Full log-probabilities (n x vocab), in token-id order (for sampling and checks).
    Array log_prob(Tape& t, Var h);
    // Adaptive input tied to this softmax (Baevski & Auli 2019): the embedding of a token of rank r is head row r in
    // the shortlist, and out[c][r - cutoff] proj[c] in cluster c (its output row projected back up) -> (n x in).
    // Throws IndexError for an id outside [0, vocab).
    Var embed(Tape& t, const Ids& ids);

    void collect(std::vector<Parameter*>& out) override;

    const std::vector<std::size_t>& cutoffs() const { return cutoffs_; }
    const std::vector<std::int32_t>& order() const { return order_; }
    std::size_t vocab() const { return vocab_; }

    Parameter head;
    std::vector<Parameter> proj, out;  // per cluster

private:
    std::size_t vocab_;
    std::vector<std::size_t> cutoffs_;   // shortlist end, then each cluster's end (the last is vocab)
    std::vector<std::int32_t> order_;    // token id -> rank
};

// Token ids ordered by descending frequency in `ids` (ties: lower id first), as the rank of each id: the
// `order` of an AdaptiveSoftmax. Ids that never occur come last.
std::vector<std::int32_t> frequency_order(const Ids& ids, std::size_t vocab);

}  // namespace xtgrad
