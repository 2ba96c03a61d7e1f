// Embedding: rows of a (V x E) table looked up by token id, with optional embedding dropout.
#pragma once

#include <xtgrad/layers/module.hpp>
#include <xtgrad/lib/rng.hpp>

namespace xtgrad {

// A lookup table of word vectors, PyTorch's nn.Embedding (initialised N(0, 1) unless told otherwise).
class Embedding : public Module {
public:
    // The table is named `<name>.weight`.
    Embedding(const std::string& name, std::size_t vocab, std::size_t dim, Rng& rng);
    // y[i] = weight[ids[i]]        -> (n x dim); throws IndexError for an id outside [0, vocab)
    Var operator()(Tape& t, const Ids& ids);
    // Embedding dropout (Gal & Ghahramani): each word type is dropped whole, for every one of its occurrences
    // in this call, with probability p; kept rows are scaled by 1/(1-p).
    Var operator()(Tape& t, const Ids& ids, float p, Rng& rng);
    void collect(std::vector<Parameter*>& out) override;

    std::size_t vocab() const { return weight.value.shape()[0]; }
    std::size_t dim() const { return weight.value.shape()[1]; }

    Parameter weight;  // (vocab x dim)

private:
    std::vector<float> type_mask_;           // per word type: the mask value decided in this call
    std::vector<std::uint32_t> type_stamp_;  // per word type: the call that decided it
    std::uint32_t stamp_ = 0;
    Array token_mask_;                       // (n x 1) mask of this call's tokens
};

}  // namespace xtgrad
