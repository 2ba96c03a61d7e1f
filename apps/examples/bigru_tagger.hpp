// A bidirectional GRU over padded variable-length sequences (not a language model): a truecaser that reads a line
// in lower case and tags each character with whether it was upper case, which needs context on both sides
// ("ROMEO:" opening a speech is all capitals, "Romeo" in a verse is not). Lines of different lengths share a batch:
// given their lengths, Recurrent keeps a line's state and emits zeros once the line has ended, and the reverse
// direction starts at each line's own last character, for both layers; the loss skips padding by the ignore index
// of cross_entropy, and an activation penalty (AWD-LSTM's AR, Merity et al. 2018) averages over real steps only:
//   y    = BiGRU_2(Embedding(x))                    PyTorch's nn.GRU, bidirectional, 2 layers, with lengths
//   loss = CE(y W^T + b, tags; ignore -1) + alpha * masked_mean(y^2, real)
// apps/examples/bigru_tagger.cpp trains it on Tiny Shakespeare.
#pragma once

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include <xtgrad/xtgrad.hpp>

namespace zoo {
using namespace xtgrad;

// Lines packed into one padded, time-major batch: step t of line b is entry t * B + b.
struct TaggedBatch {
    std::size_t T = 0, B = 0;
    Ids ids;          // lower-cased bytes; 0 on padding
    Ids tags;         // 1 upper case, 0 not, -1 padding (the ignore index)
    Lengths lengths;  // bytes per line
    Array real;       // (T*B x 1): 1 on a line's bytes, 0 on padding

    explicit TaggedBatch(const std::vector<std::string>& lines) : B(lines.size()) {
        for (const std::string& l : lines) T = std::max(T, l.size());
        ids.assign(T * B, 0);
        tags.assign(T * B, -1);
        real = Array({T * B, 1}, 0.0f);
        for (std::size_t b = 0; b < B; ++b) {
            lengths.push_back(lines[b].size());
            for (std::size_t t = 0; t < lines[b].size(); ++t) {
                const unsigned char ch = static_cast<unsigned char>(lines[b][t]);
                ids[t * B + b] = std::tolower(ch);
                tags[t * B + b] = std::isupper(ch) ? 1 : 0;
                real(t * B + b, 0) = 1.0f;
            }
        }
    }
};

class Truecaser : public Module {
public:
    Truecaser(std::size_t vocab, std::size_t emsize, std::size_t hidden, Rng& rng, float alpha = 1e-3f)
        : emb("encoder", vocab, emsize, rng),
          rnn("rnn", builtin_cell(CellType::gru), emsize, hidden, 2, 0.0f, /*bidirectional=*/true, rng),
          out("decoder", 2 * hidden, 2, rng), alpha(alpha) {}

    // Tag logits (T*B x 2) and the AR penalty of one batch.
    std::pair<Var, Var> forward(Ctx& c, const TaggedBatch& b) {
        Var y = rnn(c, emb(c, b.ids), b.B, {}, &b.lengths).y;  // (T*B x 2H), 0 on padding
        return {out(y), alpha * masked_mean(square(y), c.tape.borrow(b.real))};
    }
    // Mean cross-entropy over the real bytes, plus the penalty.
    Var loss(Ctx& c, const TaggedBatch& b) {
        const auto [logits, penalty] = forward(c, b);
        return cross_entropy(logits, b.tags, Reduction::mean, -1) + penalty;
    }

    void collect(std::vector<Parameter*>& o) override {
        emb.collect(o);
        rnn.collect(o);
        out.collect(o);
    }

    Embedding emb;
    Recurrent rnn;
    Linear out;
    float alpha;
};

}  // namespace zoo
