// The custom-cell tutorial compiles as written: its code blocks are the example program's files, verbatim; and
// docs/ops.md has a row for every op.
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::string slurp(const std::string& path) {
    std::ifstream f(path);
    REQUIRE_MESSAGE(f.good(), "cannot read ", path);
    std::ostringstream s;
    s << f.rdbuf();
    return s.str();
}

// Every code block a page marks with `<!-- file: PATH -->` on the line before it, as (PATH, code).
std::vector<std::pair<std::string, std::string>> file_blocks(const std::string& md) {
    std::vector<std::pair<std::string, std::string>> blocks;
    const std::string marker = "<!-- file: ";
    std::size_t at = 0;
    while ((at = md.find(marker, at)) != std::string::npos) {
        const std::size_t name_end = md.find(" -->\n", at);
        REQUIRE(name_end != std::string::npos);
        const std::string path = md.substr(at + marker.size(), name_end - at - marker.size());
        const std::size_t fence = name_end + 5;
        REQUIRE_MESSAGE(md.compare(fence, 3, "```") == 0, "the block of ", path, " must follow its marker");
        const std::size_t start = md.find('\n', fence) + 1, end = md.find("\n```", start);
        REQUIRE(end != std::string::npos);
        blocks.emplace_back(path, md.substr(start, end - start + 1));
        at = end + 4;
    }
    return blocks;
}

}  // namespace

TEST_CASE("docs show the example files verbatim: every block marked with its file equals that file") {
    const char* root = std::getenv("XTGRAD_SOURCE");
    REQUIRE_MESSAGE(root != nullptr, "XTGRAD_SOURCE must name the source tree (meson test sets it)");
    const std::string src = root;
    std::size_t checked = 0;
    bool tutorial = false;
    for (const char* page : {"custom-cell.md", "design.md", "ops.md"}) {
        std::ifstream probe(src + "/docs/" + page);
        if (!probe) continue;
        for (const auto& [path, code] : file_blocks(slurp(src + "/docs/" + page))) {
            INFO("docs/", page, " shows ", path);
            CHECK(code == slurp(src + "/" + path));
            tutorial = tutorial || path == "apps/examples/custom_cell.cpp";
            ++checked;
        }
    }
    CHECK(tutorial);  // the tutorial's complete program is among them
    CHECK(checked >= 1);
}

TEST_CASE("docs/ops.md lists every op that tape/ops.hpp declares") {
    const char* root = std::getenv("XTGRAD_SOURCE");
    REQUIRE_MESSAGE(root != nullptr, "XTGRAD_SOURCE must name the source tree (meson test sets it)");
    const std::string header = slurp(std::string(root) + "/tape/ops.hpp");
    const std::string table = slurp(std::string(root) + "/docs/ops.md");
    std::size_t ops = 0;
    std::istringstream lines(header);
    for (std::string line; std::getline(lines, line);) {
        const std::string var = line.rfind("Var ", 0) == 0          ? "Var "
                                : line.rfind("inline Var ", 0) == 0 ? "inline Var "
                                                                    : "";
        if (var.empty() || line.compare(var.size(), 8, "operator") == 0) continue;
        const std::string name = line.substr(var.size(), line.find('(') - var.size());
        INFO("tape/ops.hpp declares ", name, "; docs/ops.md has no row `", name, "(...)`");
        CHECK(table.find("`" + name + "(") != std::string::npos);
        ++ops;
    }
    CHECK(ops >= 40);
}
