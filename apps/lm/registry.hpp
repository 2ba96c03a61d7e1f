// The cells and models a language-model program knows, by the name `--model NAME` selects.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <xtgrad/apps/lm/model.hpp>

namespace xtgrad {

// Builds a whole model for a configuration: a class derived from RNNLM (for models that are more than a cell).
using ModelFactory = std::function<std::unique_ptr<RNNLM>(const LMConfig& config, Rng& rng)>;

// Names -> cells or whole models. A program registers what it offers and hands the registry to run_lm(); the
// name is written into every checkpoint, and a checkpoint loads only into a program that knows its name.
class Registry {
public:
    // Registers a cell: `--model name` is RNNLM with this cell in every layer. Names are letters, digits and '_'.
    Registry& add_cell(const std::string& name, CellFactory make, const std::string& description = "");
    // Registers a whole model.
    Registry& add_model(const std::string& name, ModelFactory make, const std::string& description = "");

    // Whether a name is registered.
    bool knows(const std::string& name) const { return entries_.count(name) != 0; }
    // Every registered name, sorted.
    std::vector<std::string> names() const;
    // The description given at registration.
    const std::string& description(const std::string& name) const;
    // The cell factory of a registered cell (null for a whole model); throws ConfigError for an unknown name.
    CellFactory cell(const std::string& name) const;
    // Builds the model that config.cell names; throws ConfigError naming the program and the known names.
    std::unique_ptr<RNNLM> build(const LMConfig& config, Rng& rng) const;
    // Throws ConfigError "<program> does not know the model 'X' (it knows A, B, ...)" when name is unknown.
    void check(const std::string& name) const;

    std::string program = "xtgrad-lm";  // the program's name, for messages

private:
    struct Entry {
        CellFactory cell;
        ModelFactory model;
        std::string description;
    };
    std::map<std::string, Entry> entries_;
};

// The registry of the stock program: LSTM, GRU, RNN_TANH and RNN_RELU.
Registry builtin_registry();

}  // namespace xtgrad
