// The model side of `xtgrad-lm report`: runs a loaded model over validation text with the probe API on and fills
// every section of the report document (docs/report.md) from the model, its metrics log and its data.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include <xtgrad/apps/lm/data.hpp>
#include <xtgrad/apps/lm/model.hpp>
#include <xtgrad/apps/lm/registry.hpp>

namespace CLI {
class App;
}

namespace xtgrad {

class TraceRecorder;

// What `report` is told (its flags, docs/report.md).
struct ReportOptions {
    std::string checkpoint;              // the model the report is about
    std::vector<std::string> compare;    // more checkpoints, one run each
    std::string data;                    // the corpus of every run (empty: the one each run logged, else find_data)
    std::string level;                   // word or char, for a plain PyTorch state dict read with --data
    std::string out = "report.html";
    std::string trace;                   // a Chrome trace-event file of the timed batches (empty: none)
    std::string title;                   // empty: the runs' names
    std::string prompt;                  // the samples' prompt (empty: "The" at word level, a new line at char level)
    std::size_t tokens = 1500;           // passage length, from the validation split
    std::size_t offset = 0;              // where the passage starts in the validation split
    std::size_t windows = 40;            // validation windows averaged for the gradient flow
    std::size_t position_tokens = 20000; // validation tokens averaged for the loss by window position
    std::size_t timing_batches = 50;     // training batches timed (0: no timing section)
    std::size_t sample_tokens = 0;       // tokens per sample (0: 100 words, 400 characters)
    std::uint64_t seed = 1;              // the samples' generator and the timed batches' dropout
    std::size_t threads = 0;             // BLAS threads (0: OpenBLAS's default)
    int bits = 0;                        // bits per activation value in the page, 8 or 4 (0: by size)
    bool quiet = false;
};

// Adds the flags of `report` to a command of the command line, bound to `o`.
void add_report_flags(CLI::App& cmd, ReportOptions& o);

// The report command: loads every checkpoint with its metrics log and data, builds the document (also put in `doc`
// when given), writes o.out (and o.trace). Progress goes to `log`. Throws ConfigError for bad options or an output that
// exists and is not a report (nothing the user had is overwritten), FileError naming a file that cannot be read.
void make_report(const ReportOptions& o, const Registry& registry, std::ostream& log, nlohmann::json* doc = nullptr);

// One model of a report with what it was trained on.
struct ReportRun {
    std::string name;            // its label in legends and pickers
    std::string checkpoint;      // the file, for the run card
    RNNLM* model = nullptr;
    const Vocab* vocab = nullptr;
    std::string level = "word";
    const Corpus* corpus = nullptr;  // the data: the passage is cut from corpus->valid
    std::string data_path;           // for the run card
    std::string metrics_path;        // the run's .metrics.jsonl (missing or empty: no curves, a thinner card)
    const nlohmann::json* options = nullptr;  // the run's training options by flag name (null: the defaults)
    std::size_t units_budget = 7000000;       // bytes of base64 the units' activations may take when bits is 0
};

// Every section of one run (docs/report.md, "Filling the document from a model"). The timing section trains the model
// and then puts its weights back; `trace` (optional) records its batches on thread `tid`. `bits`: 8 or 4 bits per
// activation value, or 0: 8 when they fit in run.units_budget, else 4.
nlohmann::json report_run(const ReportRun& run, const ReportOptions& o, int bits, std::ostream& log,
                          TraceRecorder* trace = nullptr, std::uint32_t tid = 1);

// Every value the cells probed, and the model's predictions, over a passage read with batch 1, the state carried
// across windows, in evaluation mode (no dropout).
struct PassageTrace {
    struct Series {
        std::size_t layer = 0;
        std::string name;           // a state part ("h", "c") or a probe ("i", "attn", ...)
        bool state = false;         // a state part (recorded by Recurrent) rather than a cell's probe
        std::size_t width = 0;
        std::vector<float> values;  // tokens x width, row-major: row t is the value after reading token t
    };
    std::vector<double> loss;  // loss[t] = -ln p(ids[t] | ids[<t]); NaN at t = 0 (not predicted)
    std::vector<std::vector<std::pair<std::int32_t, double>>> top;  // top[t]: the likeliest tokens before ids[t]
    std::vector<Series> series;  // by layer; per layer the state parts in order, then the probes as first seen
    std::vector<std::string> skipped;  // probed values not kept (not one row at batch 1, a reverse direction)
};
// Throws ReportError when a probe changes width between steps, naming it.
PassageTrace trace_passage(RNNLM& model, const Ids& ids, std::size_t window, std::size_t top_k);

// |dL/dh_t| per layer and step t of a window (norms[layer][t]), L the loss of the window's last prediction, averaged
// over `windows` consecutive windows of `stream` read with batch 1 and the state carried; also the windows used.
std::pair<std::vector<std::vector<double>>, std::size_t> gradient_flow_norms(RNNLM& model, const Ids& stream,
                                                                             std::size_t window, std::size_t windows);

// The mean loss at each position of a window (0 .. window-1) over the first `max_tokens` of `data`, the state reset to
// zero at every window start: how the loss falls as the window's context grows.
std::vector<double> loss_by_position(RNNLM& model, const Batched& data, std::size_t window, std::size_t max_tokens);

}  // namespace xtgrad
