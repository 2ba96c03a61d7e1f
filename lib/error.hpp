// Errors that xtgrad throws for bad user input. Internal invariants use assert.
#pragma once

#include <stdexcept>
#include <string>

namespace xtgrad {

// Base of every exception xtgrad throws on purpose: catch this to catch them all.
struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Operand shapes that an op or a layer cannot combine; the message names the op and the shapes.
struct ShapeError : Error {
    using Error::Error;
};

// An integer id or index outside its valid range; the message names the id and the bound.
struct IndexError : Error {
    using Error::Error;
};

// A file that cannot be read, written or parsed; the message names the file and what is wrong.
struct FileError : Error {
    using Error::Error;
};

// A command-line flag or configuration value that is out of range or malformed.
struct ConfigError : Error {
    using Error::Error;
};

}  // namespace xtgrad
