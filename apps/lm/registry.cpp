#include <xtgrad/apps/lm/registry.hpp>

#include <algorithm>
#include <cctype>

#include <fmt/core.h>
#include <fmt/format.h>

#include <xtgrad/lib/error.hpp>

namespace xtgrad {

namespace {
void check_name(const std::string& name) {
    const bool ok = !name.empty() && name.size() <= Limits::name_length &&
                    std::all_of(name.begin(), name.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
    if (!ok) throw ConfigError(fmt::format("registry: '{}' is not a model name (1 to {} letters, digits or '_')", name,
                                           Limits::name_length));
}
}  // namespace

Registry& Registry::add_cell(const std::string& name, CellFactory make, const std::string& description) {
    check_name(name);
    if (!make) throw ConfigError(fmt::format("registry: no factory for '{}'", name));
    if (knows(name)) throw ConfigError(fmt::format("registry: '{}' is registered twice", name));
    entries_[name] = Entry{std::move(make), nullptr, description};
    return *this;
}

Registry& Registry::add_model(const std::string& name, ModelFactory make, const std::string& description) {
    check_name(name);
    if (!make) throw ConfigError(fmt::format("registry: no factory for '{}'", name));
    if (knows(name)) throw ConfigError(fmt::format("registry: '{}' is registered twice", name));
    entries_[name] = Entry{nullptr, std::move(make), description};
    return *this;
}

std::vector<std::string> Registry::names() const {
    std::vector<std::string> v;
    for (const auto& kv : entries_) v.push_back(kv.first);
    return v;
}

void Registry::check(const std::string& name) const {
    if (!knows(name))
        throw ConfigError(fmt::format("{} does not know the model '{}' (it knows {})", program, name,
                                      fmt::join(names(), ", ")));
}

const std::string& Registry::description(const std::string& name) const {
    check(name);
    return entries_.at(name).description;
}

CellFactory Registry::cell(const std::string& name) const {
    check(name);
    return entries_.at(name).cell;
}

std::unique_ptr<RNNLM> Registry::build(const LMConfig& config, Rng& rng) const {
    check(config.cell);
    const Entry& e = entries_.at(config.cell);
    if (e.model) {
        std::unique_ptr<RNNLM> m = e.model(config, rng);
        if (!m) throw ConfigError(fmt::format("the factory of model '{}' returned no model", config.cell));
        m->config.cell = config.cell;
        return m;
    }
    return std::make_unique<RNNLM>(config, e.cell, rng);
}

Registry builtin_registry() {
    Registry r;
    r.add_cell("LSTM", builtin_cell(CellType::lstm), "PyTorch's nn.LSTM cell (gates i, f, g, o)");
    r.add_cell("GRU", builtin_cell(CellType::gru), "PyTorch's nn.GRU cell (gates r, z, n)");
    r.add_cell("RNN_TANH", builtin_cell(CellType::rnn_tanh), "Elman RNN with tanh");
    r.add_cell("RNN_RELU", builtin_cell(CellType::rnn_relu), "Elman RNN with relu");
    return r;
}

}  // namespace xtgrad
