// Fuzz target: the prompt encoder, at word and character level, with and without <unk>. Any text gives token ids
// inside the vocabulary or a FileError/ConfigError naming the problem (invalid UTF-8, an unknown token).
#include <cstdint>
#include <cstdlib>
#include <string>

#include <xtgrad/apps/lm/generate.hpp>
#include <xtgrad/lib/error.hpp>

#include "refused.hpp"

namespace {

void check(const xtgrad::Ids& ids, const xtgrad::Vocab& vocab) {
    for (std::int32_t id : ids)
        if (id < 0 || static_cast<std::size_t>(id) >= vocab.size()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace xtgrad;
    static const Vocab words = Vocab::from_tokens({"the", "cat", "<unk>", "<eos>", "sat", "\xc3\xa9t\xc3\xa9"});
    static const Vocab no_unk = Vocab::from_tokens({"the", "cat", "<eos>"});
    static const Vocab chars = Vocab::from_tokens({"a", "b", " ", "\n", "\xc3\xa9", "\xf0\x9f\x98\x80"});
    const std::string text(reinterpret_cast<const char*>(data), size);
    for (const auto& [vocab, level] : {std::pair<const Vocab*, const char*>{&words, "word"}, {&no_unk, "word"}, {&chars, "char"}}) {
        try {
            check(encode_prompt(text, *vocab, level), *vocab);
        } catch (const Error& e) {  // FileError (UTF-8), ConfigError (unknown token)
            refused(e);
        }
    }
    // splitting never loses a byte of valid text, and words hold no whitespace
    std::string joined;
    try {
        check_utf8(text, "fuzz");
    } catch (const FileError& e) {
        refused(e);
        return 0;
    }
    for (const std::string& c : split_chars(text)) joined += c;
    if (joined != text) std::abort();
    for (const std::string& w : split_words(text))
        if (w.empty() || w.find_first_of(" \t\n\r\v\f") != std::string::npos) std::abort();
    return 0;
}
