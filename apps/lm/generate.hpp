// Sampling text from a language model: prompt conditioning, temperature, top-k.
#pragma once

#include <string>
#include <vector>

#include <xtgrad/apps/lm/data.hpp>
#include <xtgrad/apps/lm/model.hpp>

namespace xtgrad {

// Token ids of a prompt: words (unknown ones become <unk>) or characters; throws ConfigError naming an unknown
// token when the vocabulary has no <unk>.
Ids encode_prompt(const std::string& text, const Vocab& vocab, const std::string& level);

// Draws tokens one at a time, carrying the model's state from one call to the next.
class Sampler {
public:
    Sampler(RNNLM& model, const Vocab& vocab, std::string level, std::uint64_t seed, float temperature, std::size_t top_k);
    // Forgets the state (a new text).
    void reset();
    // Conditions the state on tokens (a prompt).
    void feed(const Ids& ids);
    // Draws the next token from softmax(logits / temperature) over the top_k most likely (0: all), and feeds it.
    std::int32_t sample();
    // count tokens as text: words separated by spaces with <eos> as a line break, or characters.
    std::string generate(std::size_t count);

private:
    RNNLM& model_;
    const Vocab& vocab_;
    std::string level_;
    Rng rng_;
    float temperature_;
    std::size_t top_k_;
    Tape tape_;
    Rng unused_{0};  // the forward context's generator: sampling runs without dropout
    RecurrentState hidden_;
    std::vector<float> last_;
    std::vector<std::int32_t> order_;
    std::vector<double> probs_;
    bool have_logits_ = false;
};

}  // namespace xtgrad
