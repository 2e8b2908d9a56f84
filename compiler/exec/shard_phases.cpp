// The split of a route into local and whole phases for parameters sharded by rows
// (exec::shard_phases): which schedule entries can run on a process's own rows, which need the
// whole matrix on its owner, and what crosses between them.
#include <algorithm>
#include <set>

#include "compiler/exec/description.h"

namespace opal::exec {

Extent buffer_extent(const Route& r, uint32_t buffer) {
  if (buffer < kFirstSlotBuffer) return Extent::Full;
  const size_t i = buffer - kFirstSlotBuffer;
  return i < r.slots.size() ? r.slots[i].extent : r.scratch.at(i - r.slots.size());
}

namespace {

bool is_slot(const Route& r, uint32_t b) { return b >= kFirstSlotBuffer && b < kFirstSlotBuffer + r.slots.size(); }

// The buffers a schedule entry reads and writes.
void entry_buffers(const Route& r, const ScheduleEntry& e, std::vector<uint32_t>& reads, std::vector<uint32_t>& writes) {
  reads.clear();
  writes.clear();
  if (e.is_call) {
    const LibraryCall& c = r.calls[e.index];
    for (const Operand& o : c.in)
      if (o.buffer >= 0) reads.push_back(uint32_t(o.buffer));
    writes.push_back(c.out);
  } else {
    const KernelLaunch& k = r.kernels[e.index];
    reads = k.reads;
    writes = k.writes;
    writes.insert(writes.end(), k.zeroed.begin(), k.zeroed.end());
  }
}

// Whether an entry can run on a process's rows alone: a kernel over the full or per-row space
// that writes only row-split buffers (row sums included: a row is never split) and reads no
// slot of another extent. Library calls, column and total reductions need the whole matrix.
bool row_local(const Route& r, const ScheduleEntry& e) {
  if (e.is_call) return false;
  const KernelLaunch& k = r.kernels[e.index];
  if (!split_by_rows(k.domain) || !k.whole_sums.empty()) return false;
  for (uint32_t b : k.writes)
    if (!split_by_rows(buffer_extent(r, b))) return false;
  for (uint32_t b : k.zeroed)
    if (!split_by_rows(buffer_extent(r, b))) return false;
  for (uint32_t b : k.reads)
    if (is_slot(r, b) && !split_by_rows(buffer_extent(r, b))) return false;
  return true;
}

// Whether an entry can run on a range of elements alone: a kernel over the full space touching
// full buffers only.
bool element_local(const Route& r, const ScheduleEntry& e) {
  if (e.is_call) return false;
  const KernelLaunch& k = r.kernels[e.index];
  if (k.domain != Extent::Full || !k.zeroed.empty()) return false;
  for (const auto* list : {&k.reads, &k.writes})
    for (uint32_t b : *list)
      if (buffer_extent(r, b) != Extent::Full) return false;
  return true;
}

}  // namespace

ShardPhases shard_phases(const Route& r, ShardAxis axis) {
  const size_t n = r.schedule.size();
  std::vector<char> whole(n, 0);
  std::vector<std::vector<uint32_t>> reads(n), writes(n);
  for (size_t i = 0; i < n; ++i) {
    entry_buffers(r, r.schedule[i], reads[i], writes[i]);
    whole[i] = axis == ShardAxis::Whole || !(axis == ShardAxis::Rows ? row_local(r, r.schedule[i]) : element_local(r, r.schedule[i]));
  }
  ShardPhases p;
  p.owner_slot.assign(r.slots.size(), 0);
  // The whole phase is one span, from the first entry that needs the whole matrix to the last;
  // a slot it touches is kept whole by the owner, so a local entry that touches one joins it.
  for (bool changed = true; changed;) {
    changed = false;
    const auto first = std::find(whole.begin(), whole.end(), 1);
    if (first == whole.end()) {
      p.local_end = p.whole_end = uint32_t(n);
      break;
    }
    p.local_end = uint32_t(first - whole.begin());
    p.whole_end = uint32_t(n - size_t(std::find(whole.rbegin(), whole.rend(), 1) - whole.rbegin()));
    for (size_t i = p.local_end; i < p.whole_end; ++i) {
      whole[i] = 1;
      for (const auto* list : {&reads[i], &writes[i]})
        for (uint32_t b : *list)
          if (is_slot(r, b)) p.owner_slot[b - kFirstSlotBuffer] = 1;
    }
    for (size_t i = 0; i < n; ++i) {
      if (whole[i]) continue;
      for (const auto* list : {&reads[i], &writes[i]})
        for (uint32_t b : *list)
          if (is_slot(r, b) && p.owner_slot[b - kFirstSlotBuffer] && !whole[i]) whole[i] = 1, changed = true;
    }
  }
  if (!p.has_whole()) return p;
  // what crosses: the whole phase's inputs that the local phase wrote (or w and g), and the
  // finish phase's inputs that the whole phase wrote (and w, when the whole phase writes it)
  std::set<uint32_t> local_writes = {kParamBuffer, kGradBuffer}, whole_writes, gather, scatter;
  for (size_t i = 0; i < p.local_end; ++i) local_writes.insert(writes[i].begin(), writes[i].end());
  for (size_t i = p.local_end; i < p.whole_end; ++i) {
    for (uint32_t b : reads[i])
      if (local_writes.count(b) && !whole_writes.count(b) && !is_slot(r, b)) gather.insert(b);
    whole_writes.insert(writes[i].begin(), writes[i].end());
  }
  if (whole_writes.count(kParamBuffer)) scatter.insert(kParamBuffer);
  for (size_t i = p.whole_end; i < n; ++i)
    for (uint32_t b : reads[i])
      if (whole_writes.count(b) && !is_slot(r, b)) scatter.insert(b);
  p.gather.assign(gather.begin(), gather.end());
  p.scatter.assign(scatter.begin(), scatter.end());
  return p;
}

}  // namespace opal::exec
