// The language-model app's data: corpora and vocabularies with the PyTorch word-language-model conventions,
// the example's batching, and where the data is found.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include <xtgrad/lib/array.hpp>

namespace xtgrad {

// Token <-> id in order of first appearance.
class Vocab {
public:
    // The id of token, adding it at the end when new.
    std::int32_t add(const std::string& token);
    // The id of token, or -1.
    std::int32_t find(const std::string& token) const;
    // The token of an id; throws IndexError outside [0, size).
    const std::string& token(std::int32_t id) const;
    std::size_t size() const { return tokens_.size(); }
    // Every token in id order.
    const std::vector<std::string>& tokens() const { return tokens_; }
    // A vocabulary with these tokens in this order (for checkpoints); throws ConfigError on a duplicate.
    static Vocab from_tokens(const std::vector<std::string>& tokens);

private:
    std::vector<std::string> tokens_;
    std::unordered_map<std::string, std::int32_t> ids_;
};

// A tokenised corpus: the vocabulary and the three splits as id streams.
struct Corpus {
    std::string level;  // "word" or "char"
    Vocab vocab;
    Ids train, valid, test;
    std::string test_name = "test";  // "valid" when a char corpus has no test split of its own
};

// Word level, as the PyTorch example: DIR/{train,valid,test}.txt, each line's whitespace-separated words plus
// "<eos>", the vocabulary in order of first appearance over train, valid, test. Throws FileError naming the
// file (and line, for invalid UTF-8) when a split is missing, empty or unreadable.
Corpus load_word_corpus(const std::string& dir);

// Character level (Unicode code points): DIR/{train,valid,test}.txt when present, else one file (PATH, or
// DIR/input.txt) split 90% train / 10% valid, with valid also serving as test.
Corpus load_char_corpus(const std::string& path);

// Splits a line the way Python's str.split() does (any run of Unicode whitespace).
std::vector<std::string> split_words(const std::string& line);

// Splits valid UTF-8 text into its code points, each as a string (the tokens of the char level).
std::vector<std::string> split_chars(const std::string& text);

// Checks that text is valid UTF-8; throws FileError naming `name`, the line and the byte otherwise.
void check_utf8(const std::string& text, const std::string& name);

// The example's batchify: the stream cut into `batch` columns (remainder dropped), stored time-major:
// (steps x batch), element [t, b] = ids[b * steps + t].
struct Batched {
    std::size_t steps = 0, batch = 0;
    Ids data;  // steps * batch ids, row t holds the batch's t-th tokens
    std::int32_t at(std::size_t t, std::size_t b) const { return data[t * batch + b]; }
};
Batched batchify(const Ids& ids, std::size_t batch);

// The example's get_batch at row i: inputs rows [i, i + n), targets rows [i + 1, i + 1 + n) with
// n = min(bptt, steps - 1 - i); both flattened time-major. Returns n.
std::size_t get_batch(const Batched& src, std::size_t i, std::size_t bptt, Ids& inputs, Ids& targets);

// The data directory: `given` when not empty, else ../shared/data/<name> next to the working directory or the
// program (in the source tree, or installed under PREFIX with the data beside PREFIX). Throws ConfigError saying
// how to get the data when nothing is found.
std::string find_data(const std::string& given, const std::string& name);

// Loads a corpus at a level ("word" or "char"); throws ConfigError for another level.
Corpus load_corpus(const std::string& data, const std::string& level);

// The files load_corpus(data, level) reads, in the order it reads them (for the data checksum).
std::vector<std::string> corpus_files(const std::string& data, const std::string& level);

}  // namespace xtgrad
