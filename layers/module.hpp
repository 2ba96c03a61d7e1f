// Modules: anything that owns named parameters (layers, cells, whole models).
#pragma once

#include <string>
#include <vector>

#include <xtgrad/tape/tape.hpp>

namespace xtgrad {

// Owns parameters with stable dotted names (`rnn.weight_ih_l0`), the basis of checkpoints and optimisers.
class Module {
public:
    virtual ~Module() = default;
    // Appends every parameter, in a fixed order, to out.
    virtual void collect(std::vector<Parameter*>& out) = 0;
    // Every parameter, in a fixed order.
    std::vector<Parameter*> parameters() {
        std::vector<Parameter*> v;
        collect(v);
        return v;
    }
    // The same, read-only (collect itself changes nothing).
    std::vector<const Parameter*> parameters() const;
    // Total number of scalars in the parameters.
    std::size_t parameter_count() const;
    // Sets every parameter's gradient to zero.
    void zero_grad();
};

// The parameter with this name, or null.
Parameter* find_parameter(const std::vector<Parameter*>& params, const std::string& name);

}  // namespace xtgrad
