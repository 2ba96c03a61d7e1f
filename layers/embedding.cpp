#include <xtgrad/layers/embedding.hpp>

#include <fmt/core.h>

#include <xtgrad/lib/error.hpp>
#include <xtgrad/tape/ops.hpp>

namespace xtgrad {

Embedding::Embedding(const std::string& name, std::size_t vocab, std::size_t dim, Rng& rng)
    : weight(name + ".weight", Array({vocab, dim})) {
    fill_normal(weight.value, rng, 0.0f, 1.0f);
}

Var Embedding::operator()(Tape& t, const Ids& ids) { return gather(t.param(weight), ids); }

Var Embedding::operator()(Tape& t, const Ids& ids, float p, Rng& rng) {
    if (!(p >= 0.0f && p < 1.0f)) throw ConfigError(fmt::format("embedding dropout: rate must be in [0, 1), got {}", p));
    Var rows = gather(t.param(weight), ids);
    if (p == 0.0f) return rows;
    const std::size_t V = vocab();
    if (type_stamp_.size() != V) {
        type_stamp_.assign(V, 0);
        type_mask_.assign(V, 0.0f);
    }
    if (++stamp_ == 0) {  // wrapped: forget every old decision
        std::fill(type_stamp_.begin(), type_stamp_.end(), 0);
        stamp_ = 1;
    }
    ensure_shape(token_mask_, {ids.size(), 1});
    for (std::size_t i = 0; i < ids.size(); ++i) {
        const auto w = static_cast<std::size_t>(ids[i]);  // in range: gather checked it
        if (type_stamp_[w] != stamp_) {
            type_stamp_[w] = stamp_;
            type_mask_[w] = rng.uniform() < p ? 0.0f : 1.0f / (1.0f - p);
        }
        token_mask_(i, 0) = type_mask_[w];
    }
    return mul(rows, t.constant(token_mask_));
}

void Embedding::collect(std::vector<Parameter*>& out) { out.push_back(&weight); }

}  // namespace xtgrad
