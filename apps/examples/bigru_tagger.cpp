// Trains the bidirectional-GRU truecaser of bigru_tagger.hpp on the lines of a text (Tiny Shakespeare by default),
// batches of lines of different lengths padded together, and reports its accuracy on held-out lines:
//   ./bigru_tagger [TEXT_FILE] [STEPS]        (default ../shared/data/tinyshakespeare/input.txt, 300 steps)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <xtgrad/xtgrad.hpp>

#include "bigru_tagger.hpp"

using namespace xtgrad;

int main(int argc, char** argv) {
    const std::string path = argc > 1 ? argv[1] : "../shared/data/tinyshakespeare/input.txt";
    const long steps = argc > 2 ? std::strtol(argv[2], nullptr, 10) : 300;
    if (steps < 1 || argc > 3) {
        std::fprintf(stderr, "usage: bigru_tagger [TEXT_FILE] [STEPS >= 1]\n");
        return 2;
    }
    std::ifstream in(path);
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);)
        if (!l.empty()) lines.push_back(l.substr(0, 100));
    if (lines.size() < 20) {
        std::fprintf(stderr, "bigru_tagger: %s: cannot read it, or it has fewer than 20 non-empty lines\n",
                     path.c_str());
        return 1;
    }
    const std::size_t held_out = lines.size() / 10, train = lines.size() - held_out, B = 32;

    Rng rng(1);
    zoo::Truecaser model(256, 32, 64, rng);
    std::vector<Parameter*> params = model.parameters();
    Adam opt(params, 3e-3);
    Tape tape;
    double recent = 0.0;
    std::size_t chars = 0;
    const auto start = std::chrono::steady_clock::now();
    for (long s = 1; s <= steps; ++s) {
        std::vector<std::string> batch;
        for (std::size_t b = 0; b < B; ++b) batch.push_back(lines[rng.next_u64() % train]);
        const zoo::TaggedBatch tagged(batch);
        for (std::size_t n : tagged.lengths) chars += n;
        tape.clear();
        Ctx c{tape, rng, true};
        Var loss = model.loss(c, tagged);
        tape.backward(loss);
        clip_grad_norm(params, 5.0);
        opt.step();
        opt.zero_grad();
        recent += loss.value()(0, 0);
        if (s % 50 == 0 || s == steps) {
            const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            std::printf("step %5ld | loss %.4f | %.0f characters/s\n", s, recent / (s % 50 == 0 ? 50 : s % 50),
                        static_cast<double>(chars) / seconds);
            recent = 0.0;
        }
    }

    // Held-out lines, 64 at a time: tag accuracy, and that of tagging everything lower case.
    std::size_t right = 0, lower = 0, total = 0, upper_right = 0, upper = 0;
    for (std::size_t k = train; k < lines.size(); k += 64) {
        const zoo::TaggedBatch b({lines.begin() + k, lines.begin() + std::min(k + 64, lines.size())});
        tape.clear();
        NoGrad no_grad(tape);
        Ctx c{tape, rng, false};
        const Array& z = model.forward(c, b).first.value();
        for (std::size_t i = 0; i < b.tags.size(); ++i) {
            if (b.tags[i] < 0) continue;
            const int guess = z(i, 1) > z(i, 0) ? 1 : 0;
            right += guess == b.tags[i];
            lower += b.tags[i] == 0;
            upper += b.tags[i] == 1;
            upper_right += guess == 1 && b.tags[i] == 1;
            ++total;
        }
    }
    std::printf("held-out: %zu lines, %zu characters | accuracy %.4f (all lower case: %.4f) | upper case found "
                "%.4f\n", held_out, total, double(right) / total, double(lower) / total,
                upper ? double(upper_right) / upper : 0.0);
    return 0;
}
