// Drives a running Switchyard gateway with the official TypeScript SDKs, unchanged but for the
// base URL: @openrouter/sdk (its response schemas are checked on every call), and
// @openrouter/ai-sdk-provider with the `ai` package (strict response schemas: a `cost` of
// `null`, for one, makes every call throw).
//
// Environment: SWITCHYARD_BASE_URL (…/api/v1), SWITCHYARD_INFERENCE_KEY. Prints one line per
// check and a closing "N passed, M failed"; exits non-zero on any failure.

import assert from "node:assert/strict";

import { createOpenRouter } from "@openrouter/ai-sdk-provider";
import { OpenRouter } from "@openrouter/sdk";
import { generateText, jsonSchema, streamText, tool } from "ai";

const BASE = process.env.SWITCHYARD_BASE_URL;
const KEY = process.env.SWITCHYARD_INFERENCE_KEY;
// An OpenAI-format model, an Anthropic-format one, a Gemini-format one, and one without a price.
const MODELS = ["mock/fast", "mock/claude", "mock/gemini", "mock/unpriced"];
const MESSAGES = [{ role: "user", content: "Say hello" }];

let passed = 0;
let failed = 0;

async function check(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`PASS ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${name}`);
    // A response-schema failure says which field; print it, and the body it refused.
    console.log(typeof e?.pretty === "function" ? e.pretty() : (e?.stack ?? e));
    if (e?.rawValue !== undefined) console.log(JSON.stringify(e.rawValue));
  }
}

const sdk = new OpenRouter({ apiKey: KEY, serverURL: BASE, retryConfig: { strategy: "none" } });
const openrouter = createOpenRouter({ apiKey: KEY, baseURL: BASE });

await check("@openrouter/sdk: chat.send non-stream, every provider format", async () => {
  for (const model of MODELS) {
    const r = await sdk.chat.send({ chatRequest: { model, messages: MESSAGES, maxTokens: 50 } });
    assert.ok(r.id.startsWith("gen-"), r.id);
    assert.match(r.choices[0].message.content, /^tok/);
    assert.equal(typeof r.usage.cost, "number", `${model}: cost ${r.usage.cost}`);
  }
});

await check("@openrouter/sdk: chat.send stream, every provider format", async () => {
  for (const model of MODELS) {
    const stream = await sdk.chat.send({ chatRequest: { model, messages: MESSAGES, stream: true } });
    let text = "";
    let usage;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? "";
      usage = chunk.usage ?? usage;
    }
    assert.match(text, /^tok/, model);
    assert.ok(usage && usage.completionTokens > 0, `${model}: ${JSON.stringify(usage)}`);
    assert.equal(typeof usage.cost, "number", model);
  }
});

await check("ai-sdk-provider: generateText, every provider format", async () => {
  for (const model of MODELS) {
    const r = await generateText({ model: openrouter.chat(model), prompt: "Say hello", maxRetries: 0 });
    assert.match(r.text, /^tok/, model);
    assert.ok(r.usage.outputTokens > 0, `${model}: ${JSON.stringify(r.usage)}`);
  }
});

await check("ai-sdk-provider: streamText, every provider format", async () => {
  for (const model of MODELS) {
    const r = streamText({ model: openrouter.chat(model), prompt: "Say hello", maxRetries: 0 });
    assert.match(await r.text, /^tok/, model);
    assert.ok((await r.usage).outputTokens > 0, model);
  }
});

await check("ai-sdk-provider: tool calls from every provider format", async () => {
  const weather = tool({
    description: "Weather now",
    inputSchema: jsonSchema({ type: "object", properties: { city: { type: "string" } } }),
  });
  for (const model of ["mock/claude", "mock/gemini"]) {
    const r = await generateText({
      model: openrouter.chat(model),
      prompt: "Weather in Paris?",
      tools: { weather },
      toolChoice: "required",
      maxRetries: 0,
    });
    assert.equal(r.toolCalls[0]?.toolName, "weather", `${model}: ${JSON.stringify(r.toolCalls)}`);
    assert.equal(r.finishReason, "tool-calls", model);
  }
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
