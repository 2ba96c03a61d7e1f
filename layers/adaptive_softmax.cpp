#include <xtgrad/layers/adaptive_softmax.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/core.h>
#include <fmt/format.h>

#include <xtgrad/lib/error.hpp>
#include <xtgrad/tape/ops.hpp>

namespace xtgrad {

AdaptiveSoftmax::AdaptiveSoftmax(const std::string& name, std::size_t in, std::size_t vocab,
                                 std::vector<std::size_t> cutoffs, float div, Rng& rng, std::vector<std::int32_t> order)
    : vocab_(vocab), cutoffs_(std::move(cutoffs)), order_(std::move(order)) {
    if (cutoffs_.empty() || cutoffs_.front() == 0 || !std::is_sorted(cutoffs_.begin(), cutoffs_.end()) ||
        std::adjacent_find(cutoffs_.begin(), cutoffs_.end()) != cutoffs_.end() || cutoffs_.back() >= vocab)
        throw ConfigError(fmt::format("adaptive softmax: cutoffs [{}] must increase strictly, start above 0 and stay "
                                      "below the vocabulary size {}", fmt::join(cutoffs_, ", "), vocab));
    if (!(div >= 1.0f)) throw ConfigError(fmt::format("adaptive softmax: div_value must be >= 1, got {}", div));
    if (!order_.empty()) {
        if (order_.size() != vocab)
            throw ConfigError(fmt::format("adaptive softmax: order has {} entries for {} tokens", order_.size(), vocab));
        std::vector<bool> seen(vocab, false);
        for (std::size_t id = 0; id < vocab; ++id) {
            const std::int32_t r = order_[id];
            if (r < 0 || static_cast<std::size_t>(r) >= vocab || seen[static_cast<std::size_t>(r)])
                throw ConfigError(fmt::format("adaptive softmax: order is not a permutation of [0, {}): token {} has "
                                              "rank {}{}", vocab, id, r, r >= 0 && static_cast<std::size_t>(r) < vocab
                                              ? " a second time" : ""));
            seen[static_cast<std::size_t>(r)] = true;
        }
    }
    const std::size_t clusters = cutoffs_.size();
    cutoffs_.push_back(vocab);
    const float k = 1.0f / std::sqrt(static_cast<float>(in));
    head = Parameter(name + ".head.weight", cutoffs_[0] + clusters, in);
    fill_uniform(head.value, rng, -k, k);
    for (std::size_t i = 0; i < clusters; ++i) {
        const auto dim = std::max<std::size_t>(1, static_cast<std::size_t>(std::floor(in / std::pow(div, i + 1))));
        proj.emplace_back(fmt::format("{}.tail.{}.0.weight", name, i), dim, in);
        out.emplace_back(fmt::format("{}.tail.{}.1.weight", name, i), cutoffs_[i + 1] - cutoffs_[i], dim);
        fill_uniform(proj.back().value, rng, -k, k);
        const float k2 = 1.0f / std::sqrt(static_cast<float>(dim));
        fill_uniform(out.back().value, rng, -k2, k2);
    }
}

// loss = sum over rows of -log p_head(t or its cluster) - [t in cluster i] log p_tail_i(t), all cross-entropies
Var AdaptiveSoftmax::loss(Var h, const Ids& targets, Reduction reduction) {
    Tape& t = *h.tape;
    const std::size_t n = targets.size(), shortlist = cutoffs_[0];
    if (h.rows() != n)
        throw ShapeError(fmt::format("adaptive softmax: {} targets for hidden states {}", n, shape_str(h.shape())));
    Ids& head_targets = t.scratch<Ids>();
    Ids& picked = t.scratch<Ids>();
    Ids& tail_targets = t.scratch<Ids>();
    head_targets.resize(n);
    for (std::size_t r = 0; r < n; ++r) {
        const std::int32_t id = targets[r];
        if (id < 0 || static_cast<std::size_t>(id) >= vocab_)
            throw IndexError(fmt::format("adaptive softmax: target id {} at position {} is outside [0, {})", id, r, vocab_));
        const auto rank = static_cast<std::size_t>(order_.empty() ? id : order_[static_cast<std::size_t>(id)]);
        if (rank < shortlist) {
            head_targets[r] = static_cast<std::int32_t>(rank);
        } else {
            const std::size_t c = static_cast<std::size_t>(std::upper_bound(cutoffs_.begin(), cutoffs_.end(), rank) - cutoffs_.begin()) - 1;
            head_targets[r] = static_cast<std::int32_t>(shortlist + c);
        }
    }
    Var total = cross_entropy(matmul_t(h, t.param(head)), head_targets, Reduction::sum);
    for (std::size_t c = 0; c + 1 < cutoffs_.size(); ++c) {
        picked.clear();
        tail_targets.clear();
        for (std::size_t r = 0; r < n; ++r) {
            if (static_cast<std::size_t>(head_targets[r]) != shortlist + c) continue;
            const std::int32_t id = targets[r];
            const auto rank = static_cast<std::size_t>(order_.empty() ? id : order_[static_cast<std::size_t>(id)]);
            picked.push_back(static_cast<std::int32_t>(r));
            tail_targets.push_back(static_cast<std::int32_t>(rank - cutoffs_[c]));
        }
        if (picked.empty()) continue;
        Var logits = matmul_t(matmul_t(gather(h, picked), t.param(proj[c])), t.param(out[c]));
        total = total + cross_entropy(logits, tail_targets, Reduction::sum);
    }
    return reduction == Reduction::mean ? scale(total, 1.0f / static_cast<float>(std::max<std::size_t>(n, 1))) : total;
}

Array AdaptiveSoftmax::log_prob(Tape& t, Var h) {
    const std::size_t n = h.rows(), shortlist = cutoffs_[0];
    const Array head_lp = log_softmax(matmul_t(h, t.param(head))).value();
    Array lp({n, vocab_});
    std::vector<std::int32_t> id_of(vocab_);
    for (std::size_t id = 0; id < vocab_; ++id)
        id_of[order_.empty() ? id : static_cast<std::size_t>(order_[id])] = static_cast<std::int32_t>(id);
    for (std::size_t r = 0; r < n; ++r)
        for (std::size_t k = 0; k < shortlist; ++k) lp(r, static_cast<std::size_t>(id_of[k])) = head_lp(r, k);
    for (std::size_t c = 0; c + 1 < cutoffs_.size(); ++c) {
        const Array tail = log_softmax(matmul_t(matmul_t(h, t.param(proj[c])), t.param(out[c]))).value();
        for (std::size_t r = 0; r < n; ++r)
            for (std::size_t k = 0; k < tail.shape()[1]; ++k)
                lp(r, static_cast<std::size_t>(id_of[cutoffs_[c] + k])) = head_lp(r, shortlist + c) + tail(r, k);
    }
    return lp;
}

// y[i] = head[r_i] (r_i < shortlist), out[c][r_i - cutoffs[c]] proj[c] (cluster c): the rows of every group, stacked,
// then put back in token order by one gather
Var AdaptiveSoftmax::embed(Tape& t, const Ids& ids) {
    const std::size_t n = ids.size(), groups = cutoffs_.size();
    std::vector<Ids>& group_ids = t.scratch<std::vector<Ids>>();
    Ids& position = t.scratch<Ids>();  // row of token i in the stacked groups
    group_ids.resize(groups);
    for (Ids& g : group_ids) g.clear();
    position.resize(n);
    std::vector<std::int32_t>& group_of = t.scratch<std::vector<std::int32_t>>();
    group_of.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        const std::int32_t id = ids[i];
        if (id < 0 || static_cast<std::size_t>(id) >= vocab_)
            throw IndexError(fmt::format("adaptive input: token id {} at position {} is outside [0, {})", id, i, vocab_));
        const auto rank = static_cast<std::size_t>(order_.empty() ? id : order_[static_cast<std::size_t>(id)]);
        const auto g = static_cast<std::size_t>(std::upper_bound(cutoffs_.begin(), cutoffs_.end(), rank) - cutoffs_.begin());
        group_of[i] = static_cast<std::int32_t>(g);
        position[i] = static_cast<std::int32_t>(group_ids[g].size());
        group_ids[g].push_back(static_cast<std::int32_t>(g == 0 ? rank : rank - cutoffs_[g - 1]));
    }
    std::vector<Var>& pieces = t.scratch<std::vector<Var>>();
    pieces.clear();
    std::vector<std::int32_t>& start = t.scratch<std::vector<std::int32_t>>();
    start.assign(groups, 0);
    std::int32_t rows = 0;
    for (std::size_t g = 0; g < groups; ++g) {
        start[g] = rows;
        if (group_ids[g].empty()) continue;
        rows += static_cast<std::int32_t>(group_ids[g].size());
        pieces.push_back(g == 0 ? gather(t.param(head), group_ids[0])
                                : matmul(gather(t.param(out[g - 1]), group_ids[g]), t.param(proj[g - 1])));
    }
    if (pieces.empty()) return gather(t.param(head), group_ids[0]);  // no tokens: (0 x in)
    for (std::size_t i = 0; i < n; ++i) position[i] += start[static_cast<std::size_t>(group_of[i])];
    if (pieces.size() == 1 && group_ids[0].size() == n) return pieces[0];  // all in the shortlist, in order
    return gather(pieces.size() == 1 ? pieces[0] : concat_rows(pieces), position);
}

void AdaptiveSoftmax::collect(std::vector<Parameter*>& o) {
    o.push_back(&head);
    for (std::size_t c = 0; c < proj.size(); ++c) {
        o.push_back(&proj[c]);
        o.push_back(&out[c]);
    }
}

std::vector<std::int32_t> frequency_order(const Ids& ids, std::size_t vocab) {
    std::vector<std::size_t> count(vocab, 0);
    for (std::int32_t id : ids)
        if (id >= 0 && static_cast<std::size_t>(id) < vocab) ++count[static_cast<std::size_t>(id)];
    std::vector<std::int32_t> by_freq(vocab);
    std::iota(by_freq.begin(), by_freq.end(), 0);
    std::stable_sort(by_freq.begin(), by_freq.end(), [&](std::int32_t a, std::int32_t b) {
        return count[static_cast<std::size_t>(a)] > count[static_cast<std::size_t>(b)];
    });
    std::vector<std::int32_t> rank(vocab);
    for (std::size_t r = 0; r < vocab; ++r) rank[static_cast<std::size_t>(by_freq[r])] = static_cast<std::int32_t>(r);
    return rank;
}

}  // namespace xtgrad
