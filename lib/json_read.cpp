#include <xtgrad/lib/json_read.hpp>

#include <utility>
#include <vector>

#include <fmt/core.h>

#include <xtgrad/lib/error.hpp>

namespace xtgrad {

namespace {

using nlohmann::json;

// nlohmann's SAX events turned into a document, as its own DOM parser does, with the bounds checked on every
// value and each key looked up in its object before it is added.
class BoundedDom {
public:
    BoundedDom(const JsonLimits& limits, const std::string& what) : limits_(limits), what_(what) {}

    bool null() { return put(nullptr); }
    bool boolean(bool v) { return put(v); }
    bool number_integer(json::number_integer_t v) { return put(v); }
    bool number_unsigned(json::number_unsigned_t v) { return put(v); }
    bool number_float(json::number_float_t v, const json::string_t&) { return put(v); }
    bool string(json::string_t& v) { return put(std::move(v)); }
    bool binary(json::binary_t& v) { return put(std::move(v)); }  // never from JSON text
    bool start_object(std::size_t) { return open(json::value_t::object); }
    bool start_array(std::size_t) { return open(json::value_t::array); }
    bool end_object() { return close(); }
    bool end_array() { return close(); }
    bool key(json::string_t& k) {
        json& object = *open_.back();
        if (object.contains(k)) fail(fmt::format("duplicate key \"{}\"", k));
        slot_ = &object[k];
        return true;
    }
    bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) {
        // e.what() is "[json.exception.parse_error.101] parse error at line 1, column 3: syntax error ..."
        std::string why = e.what();
        const std::size_t bracket = why.find("] ");
        if (bracket != std::string::npos) why.erase(0, bracket + 2);
        const std::size_t colon = why.rfind("parse error at line", 0) == 0 ? why.find(": ") : std::string::npos;
        if (colon != std::string::npos) why.erase(0, colon + 2);
        std::string printable;  // the text it quotes may hold the offending bytes: shown as \xNN
        for (const char ch : why) {
            const auto u = static_cast<unsigned char>(ch);
            printable += u < 0x20 || u >= 0x7f ? fmt::format("\\x{:02x}", u) : std::string(1, ch);
        }
        throw FileError(fmt::format("{}: malformed JSON at byte {}: {}", what_, position, printable));
    }

    json take() { return std::move(root_); }

private:
    [[noreturn]] void fail(const std::string& why) const { throw FileError(fmt::format("{}: {}", what_, why)); }

    // Places v where the parser stands: the document, the next element of an array, or the value of a key.
    json* place(json&& v) {
        if (++values_ > limits_.values)
            fail(fmt::format("more than {} JSON values (the limit for this document)", limits_.values));
        if (open_.empty()) {
            root_ = std::move(v);
            return &root_;
        }
        json& parent = *open_.back();
        if (parent.is_array()) {
            parent.push_back(std::move(v));  // only the innermost open container grows: the pointers stay valid
            return &parent.back();
        }
        *slot_ = std::move(v);
        return slot_;
    }
    bool put(json&& v) {
        place(std::move(v));
        return true;
    }
    bool open(json::value_t type) {
        if (open_.size() + 1 > limits_.depth)
            fail(fmt::format("JSON nesting deeper than {} (the limit for this document)", limits_.depth));
        open_.push_back(place(json(type)));
        return true;
    }
    bool close() {
        open_.pop_back();
        return true;
    }

    const JsonLimits& limits_;
    const std::string& what_;
    json root_;
    std::vector<json*> open_;  // the containers being filled, innermost last
    json* slot_ = nullptr;     // the value of the last key read
    std::size_t values_ = 0;
};

}  // namespace

json parse_json(const std::string& text, const JsonLimits& limits, const std::string& what) {
    BoundedDom dom(limits, what);
    json::sax_parse(text, &dom);  // strict: whole input, RFC 8259 numbers, valid UTF-8; errors throw from the handler
    return dom.take();
}

std::string json_quote(const std::string& s, const std::string& what) {
    try {
        return json(s).dump();
    } catch (const json::type_error&) {
        throw FileError(fmt::format("{} is not valid UTF-8, which JSON cannot hold", what));
    }
}

}  // namespace xtgrad
