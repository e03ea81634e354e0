// `moxie serve` driven by the official `openai` npm package (what real clients use).
// Usage: node test.mjs MOXIE_BINARY DEMO_MODEL_DIR  (run from a folder where `openai` is installed)
import { spawn, spawnSync } from 'node:child_process';
import OpenAI from 'openai';

const [moxie, demo] = process.argv.slice(2);
const failures = [];
function check(cond, msg) {
  if (!cond) {
    failures.push(msg);
    console.log('FAIL:', msg);
  }
}

function startServer(args) {
  return new Promise((resolve, reject) => {
    const proc = spawn(moxie, ['serve', '--port', '0', '-t', '2', ...args]);
    let err = '';
    proc.stderr.on('data', (d) => {
      err += d.toString();
      const m = err.match(/http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) resolve({ proc, port: Number(m[1]) });
    });
    proc.on('exit', (code) => reject(new Error(`server exited (${code}): ${err}`)));
  });
}

function moxieRun(prompt, n) {
  const r = spawnSync(moxie, ['run', '-m', demo, '-p', prompt, '-n', String(n), '--temp', '0',
    '-t', '2', '--json'], { encoding: 'utf8' });
  return JSON.parse(r.stdout).text;
}

async function chatStreamText(client, messages, extra = {}) {
  const stream = await client.chat.completions.create({
    model: 'demo', messages, max_tokens: 24, temperature: 0, stream: true, ...extra,
  });
  let text = '';
  let usage = null;
  let finish = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    if (chunk.choices.length) {
      text += chunk.choices[0].delta.content ?? '';
      if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
    }
  }
  return { text, usage, finish };
}

const { proc, port } = await startServer(['-m', demo, '--alias', 'demo', '--parallel', '4',
  '--api-key', 'sk-moxie-test']);
const baseURL = `http://127.0.0.1:${port}/v1`;
const client = new OpenAI({ baseURL, apiKey: 'sk-moxie-test', maxRetries: 0 });
try {
  // Models list.
  const models = await client.models.list();
  check(models.data.some((m) => m.id === 'demo'), 'models.list has the served model');

  // Completions: greedy text equals `moxie run`.
  const prompt = 'The jury said';
  const comp = await client.completions.create({ model: 'demo', prompt, max_tokens: 24, temperature: 0 });
  const want = moxieRun(prompt, 24);
  check(comp.choices[0].text === want, `completion ${JSON.stringify(comp.choices[0].text)} == moxie run ${JSON.stringify(want)}`);
  check(comp.usage.completion_tokens > 0, 'completion usage');

  // Chat: non-stream and stream agree; usage in the stream when asked.
  const messages = [{ role: 'user', content: 'Tell me about the jury.' }];
  const chat = await client.chat.completions.create({ model: 'demo', messages, max_tokens: 24, temperature: 0 });
  const text = chat.choices[0].message.content;
  check(chat.choices[0].message.role === 'assistant', 'chat role');
  const streamed = await chatStreamText(client, messages, { stream_options: { include_usage: true } });
  check(streamed.text === text, `chat stream ${JSON.stringify(streamed.text)} == non-stream ${JSON.stringify(text)}`);
  check(streamed.usage && streamed.usage.completion_tokens === chat.usage.completion_tokens, 'stream usage');
  check(streamed.finish === chat.choices[0].finish_reason, 'stream finish_reason');

  // Logprobs.
  const lp = await client.chat.completions.create({ model: 'demo', messages, max_tokens: 4,
    temperature: 0, logprobs: true, top_logprobs: 2 });
  check(lp.choices[0].logprobs.content.length === lp.usage.completion_tokens &&
        lp.choices[0].logprobs.content.every((t) => t.top_logprobs.length === 2), 'chat logprobs');

  // 16 concurrent streams equal the single-client outputs, byte for byte.
  const prompts = Array.from({ length: 16 }, (_, i) => [{ role: 'user', content: `Question ${i}: who was there?` }]);
  const single = [];
  for (const p of prompts) single.push((await chatStreamText(client, p)).text);
  const together = await Promise.all(prompts.map((p) => chatStreamText(client, p)));
  together.forEach((r, i) => check(r.text === single[i], `concurrent stream ${i} equals single`));

  // Errors arrive as the SDK's typed errors.
  try {
    await client.chat.completions.create({ model: 'demo', messages, temperature: 7 });
    check(false, 'temperature 7 should fail');
  } catch (e) {
    check(e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'temperature',
      `bad temperature -> 400 param temperature (got ${e.status} ${e.param})`);
  }
  try {
    await client.chat.completions.create({ model: 'demo', messages: [] });
    check(false, 'empty messages should fail');
  } catch (e) {
    check(e.status === 400 && e.param === 'messages', 'empty messages -> 400');
  }
  const wrong = new OpenAI({ baseURL, apiKey: 'sk-wrong', maxRetries: 0 });
  try {
    await wrong.models.list();
    check(false, 'wrong key should fail');
  } catch (e) {
    check(e instanceof OpenAI.AuthenticationError && e.status === 401, 'wrong key -> 401');
  }
} catch (e) {
  check(false, `unexpected error: ${e.stack || e}`);
} finally {
  proc.kill('SIGTERM');
}
if (failures.length) {
  console.log(`${failures.length} failure(s)`);
  process.exit(1);
}
console.log('all openai-client checks passed');
