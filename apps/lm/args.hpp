// Command-line flags: --name value or --name=value, typed getters whose errors name the flag.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

namespace xtgrad {

// Parsed flags of one subcommand. Every flag read is marked; finish() rejects the ones never read.
class Args {
public:
    // Parses argv[first..argc); `switches` are the flags that take no value.
    Args(int argc, char** argv, int first, const std::set<std::string>& switches);

    bool has(const std::string& name) const { return values_.count(name) != 0; }
    std::string str(const std::string& name, const std::string& def);
    long integer(const std::string& name, long def, long min, long max);
    double real(const std::string& name, double def, double min, double max, bool min_open = false);
    bool flag(const std::string& name);
    // Throws ConfigError naming the first flag given but never read (unknown to this subcommand).
    void finish() const;

private:
    std::map<std::string, std::string> values_;
    std::set<std::string> switches_, used_;
};

}  // namespace xtgrad
