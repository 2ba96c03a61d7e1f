// The model report of xtgrad-lm: its data document (schema in docs/report.md), the one self-contained HTML page
// drawn from it, and the model-independent pieces that fill the document (matrix encoding, metrics log, text
// probes, unit ranking, gate saturation, embedding projection, profile breakdown).
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include <xtgrad/lib/error.hpp>
#include <xtgrad/tape/tape.hpp>

namespace xtgrad {

// A report document that breaks the schema of docs/report.md; the message names the field by its JSON path.
struct ReportError : Error {
    using Error::Error;
};

// Checks a report document against docs/report.md; throws ReportError naming the first bad field.
void validate_report(const nlohmann::json& doc);

// The report page: one HTML file with the data, script and style inlined, which makes no network request. Validates
// `doc` first; floating-point numbers are written with 6 significant digits.
std::string render_report(const nlohmann::json& doc);

// Writes render_report(doc) to `path`; throws FileError naming the file when it cannot be written.
void write_report(const std::string& path, const nlohmann::json& doc);

// Base64 (RFC 4648, padded) of n bytes.
std::string base64_encode(const std::uint8_t* data, std::size_t n);
// The bytes of a padded base64 text; throws ReportError on a bad character or length.
std::vector<std::uint8_t> base64_decode(const std::string& text);

// A row-major (rows x cols) float matrix, e.g. T tokens x U units, quantised per column to `bits` (8 or 4) levels
// between the column's min and max and stored unit-major as base64: the "matrix" object of docs/report.md.
// Non-finite values throw ReportError.
nlohmann::json encode_matrix(const float* data, std::size_t rows, std::size_t cols, int bits);
// The values of a "matrix" object, row-major (rows x cols); each within half a quantisation step of the original.
std::vector<float> decode_matrix(const nlohmann::json& m);

// The "curves" section from an `xtgrad-lm train` metrics log (.metrics.jsonl): its "train", "epoch" and "test" events.
// `path` names the log in errors (a malformed line is named by its number).
nlohmann::json curves_from_metrics(std::istream& in, const std::string& path);

// A signal over the tokens of a passage for a simple property of the text (position in line, inside quotes, ...).
struct TextProbe {
    std::string name;
    std::vector<double> values;  // one per token: the property after reading that token
};

// The probes of docs/report.md over a passage at a level ("word": `eos` ends a line; "char": "\n" does):
// position in line, inside quotes, inside brackets, tokens since full stop, and, when `counts` (training counts
// per token) is given, log word frequency.
std::vector<TextProbe> text_probes(const std::vector<std::string>& tokens, const std::string& level,
                                   const std::map<std::string, double>* counts = nullptr,
                                   const std::string& eos = "<eos>");

// One recorded activation of a layer over a passage: row-major (rows = tokens x cols = units).
struct ActivationView {
    std::size_t layer = 0;
    std::string kind;  // "h", "c" or a gate name
    std::size_t rows = 0, cols = 0;
    const float* data = nullptr;
};

// A unit and how well its activation follows a probe (Pearson correlation over the passage).
struct UnitCorrelation {
    std::string probe;
    std::size_t layer = 0;
    std::string kind;
    std::size_t unit = 0;
    double r = 0.0;
};

// The units whose activation correlates best (|r|) with a probe: at most `per_probe` per probe and `top` in all,
// best first, each unit of a layer once (by its best kind: h, c and a unit's gates belong to one cell). Constant
// units and constant probes are skipped.
// Throws ReportError when a view's rows differ from a probe's length.
std::vector<UnitCorrelation> rank_units(const std::vector<ActivationView>& views, const std::vector<TextProbe>& probes,
                                        std::size_t top = 20, std::size_t per_probe = 5);

// The "top" list of the units section for ranked units.
nlohmann::json units_top_json(const std::vector<UnitCorrelation>& ranked);

// How often each unit of a gate is saturated: the fraction of rows below `low` (left) and above `high` (right).
struct Saturation {
    std::vector<double> left, right;
};
Saturation saturation(const float* data, std::size_t rows, std::size_t cols, double low = 0.1, double high = 0.9);

// The first two principal components of chosen rows of a (n x dim) row-major matrix (an embedding table).
struct Projection {
    std::vector<double> x, y;         // coordinates of each chosen row, in the order given
    double explained[2] = {0.0, 0.0};  // fraction of the chosen rows' variance along each component
};
// Throws ReportError on a row index out of range or fewer than 3 rows.
Projection pca_2d(const float* table, std::size_t n, std::size_t dim, const std::vector<std::size_t>& rows);

// The k rows nearest to `row` by cosine similarity (excluding itself), best first, as (row, cosine).
std::vector<std::pair<std::size_t, double>> nearest_rows(const float* table, std::size_t n, std::size_t dim,
                                                         std::size_t row, std::size_t k);

// The "ops" list of the timing section from a tape's profile (Tape::profile), largest total first.
nlohmann::json timing_ops_json(const std::map<std::string, OpTiming>& profile);

}  // namespace xtgrad
