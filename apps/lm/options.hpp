// Everything `train` is told, declared once: each setting's flag name, help, bounds and whether a resumed run may
// change it. The command line, the resume point's record of the run and the conflict check all read this table.
#pragma once

#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include <xtgrad/apps/lm/config.hpp>
#include <xtgrad/lib/blas.hpp>

namespace xtgrad {

// Everything `train` is told. Defaults are the PyTorch word-language-model example's.
struct TrainOptions {
    std::string recipe;                    // --recipe: the named settings this run started from (empty: none)
    std::string data;                      // corpus folder (or file, char level); empty: find_data()
    std::string level = "word";            // word or char
    std::string cell = "LSTM";             // --model: a registered cell or model
    std::size_t emsize = 200, nhid = 200, nlayers = 2;
    float dropout = 0.2f;
    bool tied = false;
    bool adaptive_softmax = false;
    std::vector<std::size_t> cutoffs{2000, 10000};
    float div_value = 4.0f;
    float weight_drop = 0.0f;
    std::vector<std::string> cell_options;  // "name=value"
    float dropouti = -1.0f, dropouth = -1.0f, dropouto = -1.0f, dropoute = 0.0f;
    bool locked_dropout = false;
    float alpha = 0.0f, beta = 0.0f;
    bool variable_bptt = false;
    std::string optimizer = "sgd";
    std::string lr_schedule = "plateau";
    std::string time_budget;               // "60m", "1h", "3600s" or seconds; empty: none
    double lr = 20.0, clip = 0.25, momentum = 0.0, weight_decay = 0.0;
    std::size_t epochs = 40, batch_size = 20, eval_batch_size = 10, bptt = 35;
    std::size_t max_batches = 0, eval_max_batches = 0;
    std::uint64_t seed = 1111;
    std::size_t log_interval = 200, checkpoint_interval = 1000, stop_after = 0;
    std::string save = "model.safetensors", init, resume;
    std::size_t threads = 0;
    std::string precision = "fp32";        // fp32 or bf16 (the matrix products' operands)
    bool quiet = false;
    std::string command;                   // not a flag: the command line, logged in the metrics' start event

    // The model architecture these options ask for (vocab and order are the data's, filled in by the trainer).
    LMConfig model_config() const;
    // --time-budget in seconds (0: none); throws ConfigError for a malformed value.
    double time_budget_seconds() const;
};

// How a resumed run treats a flag: a setting defines the run (it must match the resume point, or resuming
// refuses and names it); a session value is the run's unless this command line gives another (--epochs, --save);
// an invocation value belongs to one command line only and is never taken from the run (--threads).
enum class FieldKind { setting, session, invocation };

// One entry of the table: flag name (without "--"), help, kind, bounds for numbers (inclusive; lo_open: lo excluded).
struct Field {
    const char* name;
    const char* help;
    FieldKind kind = FieldKind::setting;
    double lo = -std::numeric_limits<double>::infinity();
    double hi = std::numeric_limits<double>::infinity();
    bool lo_open = false;
};

// Calls v(field, member) for every setting of TrainOptions, in help order: the one table of train's flags. `o` may
// be const (the members are then const too).
template <class Options, class Visitor>
void visit_train_options(Options& o, Visitor&& v) {
    static_assert(std::is_same_v<std::remove_const_t<Options>, TrainOptions>, "visits a TrainOptions");
    using K = FieldKind;
    v(Field{"recipe", "start from a named set of settings (pytorch-small, pytorch-small-tied, pytorch-medium, "
                      "wt2-1h); flags given on the command line override it"}, o.recipe);
    v(Field{"data", "corpus: DIR/{train,valid,test}.txt (word), a file or DIR/input.txt (char); default "
                    "../shared/data/wikitext-2 or tinyshakespeare", K::session}, o.data);
    v(Field{"level", "tokens: word (whitespace-separated + <eos> per line) or char"}, o.level);
    v(Field{"model", "the cell (or model) name"}, o.cell);
    v(Field{"emsize", "embedding size", K::setting, 1, Limits::width}, o.emsize);
    v(Field{"nhid", "hidden units per layer", K::setting, 1, Limits::width}, o.nhid);
    v(Field{"nlayers", "recurrent layers", K::setting, 1, Limits::layers}, o.nlayers);
    v(Field{"dropout", "dropout on the embedding, between layers and on the output", K::setting, 0, 0.99}, o.dropout);
    v(Field{"tied", "tie the decoder to the embedding (needs emsize == nhid)"}, o.tied);
    v(Field{"adaptive-softmax", "frequent words in a head, rare ones in clusters (Grave et al. 2017)"},
      o.adaptive_softmax);
    v(Field{"cutoffs", "adaptive-softmax cluster boundaries, by frequency rank", K::setting, 1, Limits::vocab},
      o.cutoffs);
    v(Field{"div-value", "adaptive-softmax: cluster i projects to nhid / div^(i+1) features", K::setting, 1, 1e3},
      o.div_value);
    v(Field{"weight-drop", "DropConnect on hidden-to-hidden weights (AWD-LSTM), built-in cells", K::setting, 0, 0.99},
      o.weight_drop);
    v(Field{"cell-option", "NAME=VALUE for the cell (repeatable)"}, o.cell_options);
    v(Field{"dropouti", "AWD-LSTM: dropout on the embedding output (-1: --dropout)", K::setting, -1, 0.99},
      o.dropouti);
    v(Field{"dropouth", "AWD-LSTM: dropout between layers (-1: --dropout)", K::setting, -1, 0.99}, o.dropouth);
    v(Field{"dropouto", "AWD-LSTM: dropout on the top output (-1: --dropout)", K::setting, -1, 0.99}, o.dropouto);
    v(Field{"dropoute", "AWD-LSTM: embedding dropout, whole word types", K::setting, 0, 0.99}, o.dropoute);
    v(Field{"locked-dropout", "AWD-LSTM: variational dropout, one mask per sequence and window"}, o.locked_dropout);
    v(Field{"alpha", "AWD-LSTM: activation regularisation (AR) weight", K::setting, 0, 1e3}, o.alpha);
    v(Field{"beta", "AWD-LSTM: temporal activation regularisation (TAR) weight", K::setting, 0, 1e3}, o.beta);
    v(Field{"variable-bptt", "AWD-LSTM: window lengths drawn around --bptt, learning rate scaled by length"},
      o.variable_bptt);
    v(Field{"optimizer", "sgd, adam, adamw, adagrad, rmsprop or ntasgd"}, o.optimizer);
    v(Field{"lr-schedule", "plateau (lr/4 when validation does not improve) or cosine (to 0 over the run: "
                           "--time-budget, else --epochs)"}, o.lr_schedule);
    v(Field{"time-budget", "stop training in time to evaluate the best model within this wall time: 3600, "
                           "3600s, 60m or 1h (empty: none)", K::session}, o.time_budget);
    v(Field{"lr", "initial learning rate", K::setting, 0, 1e6, true}, o.lr);
    v(Field{"clip", "gradient clipping by global norm (<= 0: off)", K::setting, -1, 1e9}, o.clip);
    v(Field{"momentum", "momentum (sgd, rmsprop)", K::setting, 0, 0.999999}, o.momentum);
    v(Field{"weight-decay", "weight decay", K::setting, 0, 1}, o.weight_decay);
    v(Field{"epochs", "epochs in all", K::session, 1, 1e6}, o.epochs);
    v(Field{"batch-size", "streams per batch", K::setting, 1, 1 << 20}, o.batch_size);
    v(Field{"eval-batch-size", "streams per evaluation batch", K::setting, 1, 1 << 20}, o.eval_batch_size);
    v(Field{"bptt", "steps per window (truncated BPTT)", K::setting, 1, 1 << 20}, o.bptt);
    v(Field{"max-batches", "batches per epoch at most (0: all)", K::setting, 0, 1e12}, o.max_batches);
    v(Field{"eval-max-batches", "evaluation batches at most (0: all)", K::setting, 0, 1e12}, o.eval_max_batches);
    v(Field{"seed", "random seed", K::setting, 0, 9.2e18}, o.seed);
    v(Field{"log-interval", "batches between progress lines", K::session, 1, 1e9}, o.log_interval);
    v(Field{"checkpoint-interval", "batches between resume points (and at each epoch end; 0: epoch ends only)",
            K::session, 0, 1e12}, o.checkpoint_interval);
    v(Field{"stop-after-batches", "stop after this many batches in all, leaving a resume point (0: never)",
            K::invocation, 0, 1e12}, o.stop_after);
    v(Field{"save", "best model (by validation loss); also SAVE.resume.safetensors and SAVE.metrics.jsonl",
            K::session}, o.save);
    v(Field{"init", "start from these weights (PyTorch example names, safetensors)"}, o.init);
    v(Field{"resume", "continue the run of this resume point exactly", K::invocation}, o.resume);
    v(Field{"threads", "BLAS threads (0: OpenBLAS's default)", K::invocation, 0, 256}, o.threads);
    v(Field{"precision", "matrix products: fp32, or bf16 (bf16 operands for the decoder and the input projections, "
                         "fp32 accumulation, weights and optimiser state; needs oneDNN and AVX512_BF16 or AMX)"},
      o.precision);
    v(Field{"quiet", "no progress lines", K::invocation}, o.quiet);
}

// A named set of train settings: flag name -> value, as a JSON object text.
struct Recipe {
    const char* name;
    const char* description;
    const char* settings;
};
// Every recipe `--recipe` accepts.
const std::vector<Recipe>& recipes();
// `o` with recipe `name`'s settings for every flag not in `given` (flag names on this command line); throws
// ConfigError naming the known recipes for an unknown name.
TrainOptions apply_recipe(const TrainOptions& o, const std::string& name, const std::set<std::string>& given);
// The precision a --precision value names ("fp32" or "bf16"); throws ConfigError naming the flag for any other
// value, and for bf16 where its products would not run on bf16 instructions (no oneDNN, or no AVX512_BF16/AMX).
Precision parse_precision(const std::string& value);

// The options as a JSON object text keyed by flag name (what a resume point records), and back. from_json throws
// FileError naming `context` and the key on a missing, mistyped or out-of-bounds value.
std::string train_options_to_json(const TrainOptions& o);
TrainOptions train_options_from_json(const std::string& json, const std::string& context);

// A resumed run's options: `saved` (the resume point's), with the session values given on this command line
// (`given`: flag names) and every invocation value taken from `now`. Throws ConfigError naming every given setting that differs from the
// run's ("--lr 10 (the run has 20)").
TrainOptions merge_resume_options(const TrainOptions& saved, const TrainOptions& now, const std::set<std::string>& given);

}  // namespace xtgrad
