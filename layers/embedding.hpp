// Embedding: rows of a (V x E) table looked up by token id, with optional embedding dropout.
#pragma once

#include <xtgrad/layers/module.hpp>
#include <xtgrad/lib/rng.hpp>
#include <xtgrad/tape/context.hpp>

namespace xtgrad {

// A lookup table of word vectors, PyTorch's nn.Embedding (initialised N(0, 1) unless told otherwise).
class Embedding : public Module {
public:
    // The table is named `<name>.weight`.
    Embedding(const std::string& name, std::size_t vocab, std::size_t dim, Rng& rng);
    // y[i] = weight[ids[i]]        -> (n x dim); throws IndexError for an id outside [0, vocab)
    Var operator()(Ctx& c, const Ids& ids);
    // With embedding dropout when c.training (Gal & Ghahramani): each word type is dropped whole, for every one
    // of its occurrences in this call, with probability p (a function of one draw from c.rng and the word's id);
    // kept rows are scaled by 1/(1-p).
    Var operator()(Ctx& c, const Ids& ids, float p);
    void collect(std::vector<Parameter*>& out) override;

    std::size_t vocab() const { return weight.value.shape()[0]; }
    std::size_t dim() const { return weight.value.shape()[1]; }

    Parameter weight;  // (vocab x dim)
};

// Embedding dropout's per-token factor (ids.size() x 1): each word type of ids is dropped (0) with probability p or
// kept (1/(1-p)), the same for all its occurrences in this call; multiply the rows of the embedded ids by it.
Var embedding_dropout_mask(Ctx& c, const Ids& ids, std::size_t vocab, float p);

}  // namespace xtgrad
