// The architecture of a language model, its limits, and how it is written into and read from checkpoints.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <xtgrad/layers/cell.hpp>
#include <xtgrad/lib/state_dict.hpp>

namespace xtgrad {

// The largest settings a model may have, on the command line and in a checkpoint alike.
struct Limits {
    static constexpr std::size_t vocab = 1u << 24;      // tokens
    static constexpr std::size_t width = 1u << 16;      // emsize, nhid
    static constexpr std::size_t layers = 64;           // nlayers
    static constexpr std::size_t clusters = 16;         // adaptive-softmax cut-offs
    static constexpr std::size_t cell_options = 64;     // --cell-option entries
    static constexpr std::size_t name_length = 64;      // registered cell names
};

// The architecture of a language model: PyTorch's RNNModel (embedding, dropout, a stacked recurrent layer of a
// registered cell, dropout, decoder), with the adaptive softmax and AWD-LSTM's regularisers as options.
struct LMConfig {
    std::string cell = "LSTM";  // the registered cell (or model) name: LSTM, GRU, RNN_TANH, RNN_RELU or a user's
    std::size_t vocab = 0, emsize = 200, nhid = 200, nlayers = 2;
    float dropout = 0.2f;       // on the embedding output, between layers and on the top output
    bool tied = false;          // the decoder uses the embedding table as its weight
    std::vector<std::size_t> cutoffs;  // adaptive softmax cluster boundaries (empty: full softmax)
    float div_value = 4.0f;            // adaptive softmax: cluster i projects to nhid / div^(i+1) features
    std::vector<std::int32_t> order;   // adaptive softmax: token id -> frequency rank (a permutation)
    float weight_drop = 0.0f;          // DropConnect on the hidden-to-hidden weights (cells that support it)
    CellOptions cell_options;          // options for the cell (`--cell-option name=value`)
    // AWD-LSTM's regularisers (Merity et al. 2018); all off by default, the PyTorch example's model
    float dropouti = -1.0f, dropouth = -1.0f, dropouto = -1.0f;  // dropout on the embedding output, between layers,
                                                                 // on the top output; < 0: `dropout`
    float dropoute = 0.0f;             // embedding dropout: whole word types, for every occurrence in a window
    bool locked = false;               // variational dropout: one mask per sequence and window (LockedDropout)
    float alpha = 0.0f, beta = 0.0f;   // activation (AR) and temporal activation (TAR) regularisation

    // The dropout rates in use at the embedding output, between layers and on the top output.
    float rate_in() const { return dropouti < 0.0f ? dropout : dropouti; }
    float rate_between() const { return dropouth < 0.0f ? dropout : dropouth; }
    float rate_out() const { return dropouto < 0.0f ? dropout : dropouto; }

    // Throws ConfigError naming the first setting out of range (by its flag name).
    void validate() const;
    // "LSTM 2x200, emsize 200, vocab 33278, dropout 0.2"
    std::string describe() const;
};

// Writes the settings as checkpoint metadata ("model", "emsize", ...).
void save_config(const LMConfig& c, StateDict& sd);

// Reads the settings back through MetaReader: every value parsed strictly and checked against Limits
// and the architecture (the order a permutation, cut-offs increasing and inside the vocabulary). Throws
// FileError naming `context` (the file), the key and what is wrong.
LMConfig load_config(const StateDict& sd, const std::string& context);

// Infers the architecture of a plain PyTorch state dict (the word-language-model example's names) from its
// tensor names and shapes; `cell_hint` settles RNN_TANH vs RNN_RELU. Built-in cells only. Throws FileError
// naming what is missing or inconsistent.
LMConfig infer_pytorch_config(const StateDict& sd, const std::string& cell_hint, const std::string& context);

}  // namespace xtgrad
