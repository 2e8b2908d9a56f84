// The one constant evaluator of spec expressions, for lowering (hyperparameter defaults), grids
// (sweep bounds), route conditions (`where(rank == 2)`) and `opal routes` (scale expressions of
// the sizes): numbers, `true`, `false`, `pi`, the names the caller binds (rank, rows, cols,
// numel), unary `-` and `!`, `+ - * / ^`, comparisons, `&&`, `||`, and sqrt, min, max. Anything
// else (a hyperparameter, a tensor, another call) is not a constant.
#pragma once
#include <functional>
#include <optional>
#include <string>

#include "lang/ast.h"
#include "support/interval.h"

namespace opal {

using ConstantNames = std::function<std::optional<double>(const std::string&)>;

std::optional<double> eval_constant(const Expr& e, const ConstantNames& names = {});

// An end of a parameter's range: a constant, where `inf` is infinity.
std::optional<double> eval_range_end(const Expr& e);
// A parameter's declared range (`in [0, 1)`), its ends evaluated; nullopt when it has none or
// an end is not a constant (lang/resolve.cpp reports that).
std::optional<Interval> param_interval(const Param& p);

}  // namespace opal
