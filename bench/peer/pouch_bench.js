// Peer baseline: Branchline's push and bootstrap workloads replicated through pouchdb-server.
//
// usage: node pouch_bench.js SERVER_URL N_DOCS [BATCH_SIZE] [WORKDIR]
//   SERVER_URL  e.g. http://127.0.0.1:5984 (a fresh database is created on it)
//   N_DOCS      number of stock-movement documents
//   BATCH_SIZE  documents per replication batch (default 1000, our push batch size)
//   WORKDIR     where the local pouchdb-node (leveldb) databases go; default: a temp
//               dir that is removed at the end. A non-numeric third argument is taken
//               as WORKDIR (the older call `pouch_bench.js URL N WORKDIR`).
//
// PUSH:      N docs are written into a local db (not timed), then
//            local.replicate.to(remote) into a fresh remote db is timed.
// BOOTSTRAP: a second, fresh local db times replicate.from(remote) of all N docs.
// Prints one JSON line:
//   {"push_docs_per_s": .., "bootstrap_docs_per_s": .., "n": .., "batch_size": .., ...}
"use strict";

const PouchDB = require("pouchdb-node");
const crypto = require("crypto");
const fs = require("fs");
const os = require("os");
const path = require("path");

const BATCHES_LIMIT = 10; // PouchDB's default number of batches in flight
const FILL_CHUNK = 5000; // bulkDocs chunk for the (untimed) local fill

function usage(msg) {
  console.error(`${msg}\nusage: node pouch_bench.js SERVER_URL N_DOCS [BATCH_SIZE] [WORKDIR]`);
  process.exit(2);
}

function parseArgs(argv) {
  const [url, nText, third, fourth] = argv;
  if (!url || !nText) usage("missing arguments");
  const n = Number(nText);
  if (!Number.isInteger(n) || n <= 0) usage(`N_DOCS must be a positive integer: ${nText}`);
  let batch = 1000;
  let workdir = fourth;
  if (third !== undefined) {
    if (/^\d+$/.test(third)) batch = Number(third);
    else if (fourth === undefined) workdir = third; // legacy: URL N WORKDIR
    else usage(`BATCH_SIZE must be a positive integer: ${third}`);
  }
  if (batch <= 0) usage("BATCH_SIZE must be positive");
  return { url: url.replace(/\/+$/, ""), n, batch, workdir };
}

function hlc(ms, counter, device) {
  // the same text form as sync.hlc.Stamp.encode
  return `${String(ms).padStart(15, "0")}-${String(counter).padStart(6, "0")}-${device}`;
}

async function fill(db, n) {
  const site = crypto.randomUUID();
  const products = Array.from({ length: 200 }, () => crypto.randomUUID());
  const reasons = ["sale", "sale", "sale", "return", "receipt"];
  const t0 = Date.now();
  for (let i = 0; i < n; i += FILL_CHUNK) {
    const docs = [];
    for (let j = i; j < Math.min(n, i + FILL_CHUNK); j++) {
      const reason = reasons[j % reasons.length];
      docs.push({
        _id: crypto.randomUUID(),
        site_id: site,
        product_id: products[j % products.length],
        qty: reason === "sale" ? -1 - (j % 3) : 1 + (j % 12),
        reason,
        hlc: hlc(t0 + Math.floor(j / 1000), j % 1000, "till-01"),
      });
    }
    const res = await db.bulkDocs(docs);
    const bad = res.find((r) => r.error);
    if (bad) throw new Error(`local bulkDocs failed: ${JSON.stringify(bad)}`);
  }
}

function secondsSince(t) {
  return Number(process.hrtime.bigint() - t) / 1e9;
}

async function main() {
  const { url, n, batch, workdir } = parseArgs(process.argv.slice(2));
  const ownTemp = workdir === undefined;
  const dir = ownTemp ? fs.mkdtempSync(path.join(os.tmpdir(), "pouch-bench-")) : workdir;
  fs.mkdirSync(dir, { recursive: true });
  const name = `bench-${Date.now()}-${crypto.randomBytes(4).toString("hex")}`;
  const opts = { batch_size: batch, batches_limit: BATCHES_LIMIT };
  let local, fresh, remote;
  try {
    local = new PouchDB(path.join(dir, "till"));
    await fill(local, n);

    remote = new PouchDB(`${url}/${name}`);
    await remote.info(); // creates the fresh remote db outside the timed part
    let t = process.hrtime.bigint();
    const pushed = await local.replicate.to(remote, opts);
    const pushS = secondsSince(t);
    const remoteCount = (await remote.info()).doc_count;
    if (pushed.status !== "complete" || remoteCount !== n) {
      throw new Error(`push: status ${pushed.status}, remote has ${remoteCount} of ${n} docs`);
    }

    fresh = new PouchDB(path.join(dir, "new-store"));
    t = process.hrtime.bigint();
    const pulled = await fresh.replicate.from(remote, opts);
    const bootS = secondsSince(t);
    const freshCount = (await fresh.info()).doc_count;
    if (pulled.status !== "complete" || freshCount !== n) {
      throw new Error(`bootstrap: status ${pulled.status}, got ${freshCount} of ${n} docs`);
    }

    console.log(JSON.stringify({
      push_docs_per_s: Math.round(n / pushS),
      bootstrap_docs_per_s: Math.round(n / bootS),
      n,
      batch_size: batch,
      batches_limit: BATCHES_LIMIT,
      push_s: Number(pushS.toFixed(3)),
      bootstrap_s: Number(bootS.toFixed(3)),
    }));
    await remote.destroy().catch(() => {}); // not timed; the server's data dir is temporary anyway
  } finally {
    for (const db of [local, fresh, remote]) if (db) await db.close().catch(() => {});
    if (ownTemp) fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0), // do not wait on lingering sockets/timers
  (err) => { console.error(err && err.stack ? err.stack : err); process.exit(1); },
);
