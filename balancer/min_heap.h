// A binary min-heap over small value types whose sift-down chooses between children
// arithmetically rather than by branching: with keys that tie or interleave unpredictably (a
// round robin's deadlines), mispredicted branches, not comparisons, are what a heap costs.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace harrow::balancer {

// Less(a, b): a strict weak order; true when a must come out first.
template <class T, class Less>
class MinHeap {
 public:
  bool empty() const { return items_.empty(); }
  size_t size() const { return items_.size(); }
  const T& top() const { return items_.front(); }
  void clear() { items_.clear(); }
  void reserve(size_t n) { items_.reserve(n); }

  void push(const T& item) {
    size_t at = items_.size();
    items_.push_back(item);
    while (at > 0) {
      size_t parent = (at - 1) / 2;
      if (!Less{}(item, items_[parent])) break;
      items_[at] = items_[parent];
      at = parent;
    }
    items_[at] = item;
  }

  // Removes and returns the first item (the heap must not be empty).
  T pop() {
    T first = items_.front();
    T last = items_.back();
    items_.pop_back();
    size_t n = items_.size();
    if (n == 0) return first;
    // Floyd's: walk the hole down along the lesser children to a leaf, then sift `last` up
    // from there (it usually belongs near the bottom: fewer comparisons than stopping early).
    size_t hole = 0;
    for (size_t child = 1; child < n; child = 2 * hole + 1) {
      child += static_cast<size_t>(child + 1 < n && Less{}(items_[child + 1], items_[child]));
      items_[hole] = items_[child];
      hole = child;
    }
    while (hole > 0) {
      size_t parent = (hole - 1) / 2;
      if (!Less{}(last, items_[parent])) break;
      items_[hole] = items_[parent];
      hole = parent;
    }
    items_[hole] = last;
    return first;
  }

 private:
  std::vector<T> items_;
};

}  // namespace harrow::balancer
