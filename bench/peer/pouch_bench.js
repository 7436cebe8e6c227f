// Peer baseline: the same push and bootstrap workloads through pouchdb-server.
// usage: node pouch_bench.js SERVER_URL N_DOCS WORKDIR
// prints one JSON line: {"push_docs_per_s": .., "bootstrap_docs_per_s": .., "n": ..}
const PouchDB = require("pouchdb-node");
const crypto = require("crypto");
const path = require("path");

async function main() {
  const [url, nText, workdir] = process.argv.slice(2);
  const n = parseInt(nText, 10);
  const batch = 1000; // documents per replication batch (the same as our push batches)
  const name = "bench" + Date.now();
  const local = new PouchDB(path.join(workdir, "till"));
  const product = crypto.randomUUID();
  for (let i = 0; i < n; i += 5000) {
    const docs = [];
    for (let j = i; j < Math.min(n, i + 5000); j++) {
      docs.push({ _id: crypto.randomUUID(), site: "S1", product_id: product, qty: -1,
                  reason: "sale", hlc: String(Date.now()).padStart(15, "0") + "-000000-till" });
    }
    await local.bulkDocs(docs);
  }
  const remote = new PouchDB(url + "/" + name);
  let t = process.hrtime.bigint();
  await local.replicate.to(remote, { batch_size: batch, batches_limit: 4 });
  const push = n / (Number(process.hrtime.bigint() - t) / 1e9);

  const fresh = new PouchDB(path.join(workdir, "new-store"));
  t = process.hrtime.bigint();
  await fresh.replicate.from(remote, { batch_size: batch, batches_limit: 4 });
  const boot = n / (Number(process.hrtime.bigint() - t) / 1e9);
  const info = await fresh.info();
  if (info.doc_count !== n) throw new Error(`bootstrap got ${info.doc_count} of ${n} docs`);
  console.log(JSON.stringify({ push_docs_per_s: Math.round(push), bootstrap_docs_per_s: Math.round(boot), n, batch_size: batch }));
}

main().catch((err) => { console.error(err); process.exit(1); });
