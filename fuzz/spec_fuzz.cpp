// libFuzzer target: spec text through the whole front end and compiler (parse -> resolve ->
// lower -> passes -> plan -> CPU and CUDA emission, grid expansion), never executing anything.
// Any input must end in diagnostics or generated code: no crash, hang or sanitizer report.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "driver/build.h"
#include "compiler/codegen/c_emitter.h"
#include "compiler/lower/ast_to_ir.h"
#include "compiler/pipeline.h"
#include "lang/ast.h"
#include "lang/grid.h"
#include "lang/program.h"

namespace {

void emit(const opal::CompiledOptimizer& c) {
  (void)opal::emit_optimizer(c, opal::Target::Cpu);
  (void)opal::emit_optimizer(c, opal::Target::Cuda);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  opal::LoadRequest req;
  req.stdlib_dir = OPAL_SOURCE_STDLIB;
  req.texts.push_back({"fuzz.opal", std::string(reinterpret_cast<const char*>(data), size)});
  opal::Diagnostics diags;
  std::shared_ptr<const opal::Program> program(opal::load_program(req, diags));
  if (!diags.has_errors()) {
    for (const opal::ComponentDecl* c : program->user_components) opal::check_component(*program, *c, diags);
    bool dumped = false;
    for (const opal::OptimizerDecl* o : program->user_optimizers) {
      // every pass's dump for the first optimizer: the IR and plan printers see fuzzed graphs too
      opal::CompileOptions opts;
      if (!dumped) opts.dump_after = "all";
      std::vector<opal::PassDump> dumps;
      auto c = opal::compile_optimizer(program, *o, diags, opts, &dumps);
      dumped = true;
      if (c) emit(*c);
    }
    for (const opal::GridDecl* g : program->user_grids) {
      opal::ExpandedGrid eg = opal::expand_grid(*program, *g, diags);
      (void)opal::format_grid(eg);
      // the first cells compile like any spec (all of them could be thousands)
      for (size_t i = 0; i < eg.cells.size() && i < 3; ++i) {
        if (eg.cells[i].absent) continue;
        opal::LoadRequest cell;
        cell.stdlib_dir = OPAL_SOURCE_STDLIB;
        cell.texts.push_back({"cell.opal", eg.cells[i].spec_text});
        opal::Diagnostics cd;
        std::shared_ptr<const opal::Program> cp(opal::load_program(cell, cd));
        if (cd.has_errors()) continue;
        if (const opal::OptimizerDecl* o = cp->find_optimizer(eg.cells[i].name))
          if (auto c = opal::compile_optimizer(cp, *o, cd)) emit(*c);
      }
    }
  }
  (void)diags.render();
  return 0;
}
