import { test } from "node:test";
import assert from "node:assert/strict";
import { longestFirst } from "./suite.js";

test("with --jobs the suite starts the scenarios that took longest last time, and untimed ones before all", () => {
  const s = ["a", "b", "c", "d", "e"].map((name) => ({ name }));
  const order = longestFirst(s, { a: 30, b: 300, d: 30, e: 90 }).map((x) => x.name);
  assert.deepEqual(order, ["c", "b", "e", "a", "d"]);
  assert.deepEqual(longestFirst(s, {}).map((x) => x.name), ["a", "b", "c", "d", "e"], "no history: the given order");
});
