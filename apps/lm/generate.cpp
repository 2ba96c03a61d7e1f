#include <algorithm>
#include <cmath>
#include <iostream>
#include <numeric>

#include <fmt/core.h>

#include <xtgrad/apps/lm/generate.hpp>
#include <xtgrad/lib/error.hpp>
#include <xtgrad/tape/ops.hpp>

namespace xtgrad {

Ids encode_prompt(const std::string& text, const Vocab& vocab, const std::string& level) {
    check_utf8(text, "prompt");
    Ids ids;
    if (level == "char") {
        std::size_t at = 0;
        for (const std::string& ch : split_chars(text)) {
            const std::int32_t id = vocab.find(ch);
            if (id < 0) throw ConfigError(fmt::format("prompt: character '{}' at byte {} is not in the vocabulary", ch, at));
            ids.push_back(id);
            at += ch.size();
        }
        return ids;
    }
    const std::int32_t unk = vocab.find("<unk>");
    for (const std::string& w : split_words(text)) {
        std::int32_t id = vocab.find(w);
        if (id < 0) id = unk;
        if (id < 0) throw ConfigError(fmt::format("prompt: word '{}' is not in the vocabulary (and there is no <unk>)", w));
        ids.push_back(id);
    }
    return ids;
}

Sampler::Sampler(RNNLM& model, const Vocab& vocab, std::string level, std::uint64_t seed, float temperature,
                 std::size_t top_k)
    : model_(model), vocab_(vocab), level_(std::move(level)), rng_(seed), temperature_(temperature), top_k_(top_k) {
    if (!(temperature > 0.0f)) throw ConfigError(fmt::format("--temperature must be positive, got {}", temperature));
    tape_.set_grad_enabled(false);
    reset();
}

void Sampler::reset() {
    hidden_ = model_.zero_state(1);
    have_logits_ = false;
}

void Sampler::feed(const Ids& ids) {
    if (ids.empty()) return;
    tape_.clear();
    Ctx c{tape_, unused_, false};
    const RecurrentOutput f = model_.features(c, ids, 1, hidden_);
    const Array v = model_.log_probs(c, f.y);
    hidden_.assign(f);
    const std::size_t V = v.shape()[1];
    last_.assign(v.data() + (ids.size() - 1) * V, v.data() + ids.size() * V);
    have_logits_ = true;
}

std::int32_t Sampler::sample() {
    if (!have_logits_) {
        const std::int32_t start = vocab_.find(level_ == "word" ? "<eos>" : "\n");
        feed({start >= 0 ? start : static_cast<std::int32_t>(rng_.below(vocab_.size()))});
    }
    const std::size_t V = last_.size();
    order_.resize(V);
    std::iota(order_.begin(), order_.end(), 0);
    std::size_t k = top_k_ && top_k_ < V ? top_k_ : V;
    if (k < V)
        std::partial_sort(order_.begin(), order_.begin() + static_cast<long>(k), order_.end(),
                          [&](std::int32_t a, std::int32_t b) { return last_[a] > last_[b]; });
    float m = -INFINITY;
    for (std::size_t j = 0; j < k; ++j) m = std::max(m, last_[order_[j]]);
    probs_.resize(k);
    double total = 0.0;
    for (std::size_t j = 0; j < k; ++j) total += probs_[j] = std::exp((last_[order_[j]] - m) / temperature_);
    double u = rng_.uniform() * total;
    std::int32_t pick = order_[k - 1];
    for (std::size_t j = 0; j < k; ++j) {
        u -= probs_[j];
        if (u < 0) {
            pick = order_[j];
            break;
        }
    }
    feed({pick});
    return pick;
}

std::string Sampler::generate(std::size_t count) {
    std::string out;
    for (std::size_t i = 0; i < count; ++i) {
        const std::int32_t id = sample();
        const std::string& tok = vocab_.token(id);
        if (level_ == "char") {
            out += tok;
        } else if (tok == "<eos>") {
            out += "\n";
        } else {
            if (!out.empty() && out.back() != '\n') out += ' ';
            out += tok;
        }
    }
    return out;
}

}  // namespace xtgrad
