//! Pricing: what a generation costs at an endpoint's prices, and the most a request can cost
//! before it runs (what admission reserves). One rule, used by every stage that needs it.

use crate::money::Money;

/// Per-token (or per-request, per-image) prices; `None` means the catalogue gives no price, so
/// any cost that depends on it is unknown rather than zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prices {
    pub prompt: Option<Money>,
    pub completion: Option<Money>,
    pub request: Option<Money>,
    pub image: Option<Money>,
    pub input_cache_read: Option<Money>,
    pub input_cache_write: Option<Money>,
    pub internal_reasoning: Option<Money>,
}

/// Token counts as a provider reports them (OpenAI's `usage` object).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Prompt tokens read from the provider's cache (part of `prompt_tokens`).
    pub cached_tokens: u64,
    /// Prompt tokens written to the provider's cache (part of `prompt_tokens`; Anthropic's
    /// `cache_creation_input_tokens`, Gemini's explicit cache).
    pub cache_write_tokens: u64,
    /// Reasoning tokens (part of `completion_tokens`, as OpenAI counts them).
    pub reasoning_tokens: u64,
}

/// A generation's cost in OpenRouter's `cost_details` parts: what its prompt cost (cache reads
/// and writes and the per-request price included) and what its completion cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CostBreakdown {
    pub prompt: Money,
    pub completion: Money,
}

impl CostBreakdown {
    pub fn total(&self) -> Money {
        self.prompt.saturating_add(self.completion)
    }
}

impl Usage {
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

impl Prices {
    /// The cost of `usage`, or `None` when a price it needs is missing: an unknown cost is
    /// reported as unknown, never as zero.
    pub fn cost(&self, usage: &Usage) -> Option<Money> {
        self.breakdown(usage).map(|b| b.total())
    }

    /// The cost of `usage` in OpenRouter's two parts (`cost_details`), or `None` when a price
    /// it needs is missing.
    ///
    /// Prompt tokens read from the cache are charged at the cache-read price and those written
    /// to it at the cache-write price (each the prompt price when the catalogue has none);
    /// reasoning tokens at the internal-reasoning price when one is set. The per-request price
    /// counts with the prompt.
    pub fn breakdown(&self, usage: &Usage) -> Option<CostBreakdown> {
        let cached = usage.cached_tokens.min(usage.prompt_tokens);
        let written = usage.cache_write_tokens.min(usage.prompt_tokens - cached);
        let reasoning = usage.reasoning_tokens.min(usage.completion_tokens);
        let prompt_price = self.prompt?;
        let completion_price = self.completion?;
        let read_price = self.input_cache_read.unwrap_or(prompt_price);
        let write_price = self.input_cache_write.unwrap_or(prompt_price);
        let (reasoning_price, billed_reasoning) = match self.internal_reasoning {
            Some(p) => (p, reasoning),
            None => (completion_price, 0),
        };
        Some(CostBreakdown {
            prompt: prompt_price
                .saturating_mul(usage.prompt_tokens - cached - written)
                .saturating_add(read_price.saturating_mul(cached))
                .saturating_add(write_price.saturating_mul(written))
                .saturating_add(self.request.unwrap_or(Money::ZERO)),
            completion: completion_price
                .saturating_mul(usage.completion_tokens - billed_reasoning)
                .saturating_add(reasoning_price.saturating_mul(billed_reasoning)),
        })
    }

    /// Whether the catalogue prices tokens here at all (else every cost is unknown).
    pub fn is_priced(&self) -> bool {
        self.prompt.is_some() && self.completion.is_some()
    }

    /// The most a request can cost here: `prompt_tokens` at the dearer of the prompt and
    /// cache-write prices (a cache write costs more than a plain prompt token at Anthropic),
    /// plus `output_tokens` at the dearer of the completion and reasoning prices, plus the
    /// per-request price. A missing price counts as zero, as the ledger records it.
    pub fn worst_case(&self, prompt_tokens: u64, output_tokens: u64) -> Money {
        let zero = Money::ZERO;
        let per_output = self
            .completion
            .unwrap_or(zero)
            .max(self.internal_reasoning.unwrap_or(zero));
        let per_prompt = self
            .prompt
            .unwrap_or(zero)
            .max(self.input_cache_write.unwrap_or(zero));
        per_prompt
            .saturating_mul(prompt_tokens)
            .saturating_add(per_output.saturating_mul(output_tokens))
            .saturating_add(self.request.unwrap_or(zero))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prices() -> Prices {
        Prices {
            prompt: Some(Money::from_pico(1_000)),
            completion: Some(Money::from_pico(2_000)),
            input_cache_read: Some(Money::from_pico(100)),
            ..Default::default()
        }
    }

    #[test]
    fn prices_cached_and_reasoning_tokens() {
        let u = Usage {
            prompt_tokens: 10,
            completion_tokens: 5,
            cached_tokens: 4,
            cache_write_tokens: 0,
            reasoning_tokens: 2,
        };
        assert_eq!(
            prices().cost(&u),
            Some(Money::from_pico(6_000 + 400 + 10_000))
        );
        let mut p = prices();
        p.internal_reasoning = Some(Money::from_pico(3_000));
        assert_eq!(
            p.cost(&u),
            Some(Money::from_pico(6_000 + 400 + 6_000 + 6_000))
        );
    }

    /// Counts come from providers: absurd ones saturate, never wrap (a wrapped sum would bill
    /// almost nothing) and never panic.
    #[test]
    fn provider_reported_counts_never_wrap() {
        let huge = Usage {
            prompt_tokens: u64::MAX,
            completion_tokens: u64::MAX,
            cached_tokens: u64::MAX,
            cache_write_tokens: u64::MAX,
            reasoning_tokens: u64::MAX,
        };
        assert_eq!(huge.total_tokens(), u64::MAX);
        let no_cache_price = Prices {
            input_cache_read: None,
            ..prices()
        };
        let big = Usage {
            prompt_tokens: u64::MAX / 2,
            completion_tokens: u64::MAX / 2,
            ..Usage::default()
        };
        for p in [prices(), no_cache_price] {
            let cost = p.cost(&big).unwrap();
            assert!(
                cost >= p
                    .cost(&Usage {
                        prompt_tokens: 1 << 40,
                        ..Usage::default()
                    })
                    .unwrap()
            );
            assert!(p.cost(&huge).is_some());
        }
    }

    #[test]
    fn prices_cache_writes_apart_from_reads() {
        let mut p = prices();
        p.input_cache_write = Some(Money::from_pico(1_250));
        let u = Usage {
            prompt_tokens: 100,
            completion_tokens: 10,
            cached_tokens: 30,
            cache_write_tokens: 50,
            reasoning_tokens: 0,
        };
        let b = p.breakdown(&u).unwrap();
        assert_eq!(
            b.prompt,
            Money::from_pico(20 * 1_000 + 30 * 100 + 50 * 1_250)
        );
        assert_eq!(b.completion, Money::from_pico(10 * 2_000));
        assert_eq!(p.cost(&u), Some(b.total()));
        // Without a cache-write price a write costs a prompt token.
        p.input_cache_write = None;
        assert_eq!(
            p.breakdown(&u).unwrap().prompt,
            Money::from_pico(70 * 1_000 + 30 * 100)
        );
        // Reported reads and writes beyond the prompt are bounded by it.
        let absurd = Usage {
            prompt_tokens: 10,
            cached_tokens: 8,
            cache_write_tokens: 8,
            ..Usage::default()
        };
        assert_eq!(
            p.breakdown(&absurd).unwrap().prompt,
            Money::from_pico(8 * 100 + 2 * 1_000)
        );
    }

    #[test]
    fn worst_case_covers_a_dearer_cache_write() {
        let mut p = prices();
        p.input_cache_write = Some(Money::from_pico(1_250));
        assert_eq!(p.worst_case(4, 0), Money::from_pico(5_000));
        let all_written = Usage {
            prompt_tokens: 4,
            cache_write_tokens: 4,
            ..Usage::default()
        };
        assert!(p.cost(&all_written).unwrap() <= p.worst_case(4, 0));
    }

    #[test]
    fn a_missing_price_makes_the_cost_unknown() {
        let mut p = prices();
        p.completion = None;
        assert_eq!(p.cost(&Usage::default()), None);
    }

    #[test]
    fn worst_case_uses_the_dearer_output_price() {
        let mut p = prices();
        assert_eq!(p.worst_case(3, 10), Money::from_pico(3_000 + 20_000));
        p.internal_reasoning = Some(Money::from_pico(5_000));
        p.request = Some(Money::from_pico(7));
        assert_eq!(p.worst_case(3, 10), Money::from_pico(3_000 + 50_000 + 7));
        assert_eq!(
            Prices::default().worst_case(u64::MAX, u64::MAX),
            Money::ZERO
        );
        // Absurd counts saturate instead of wrapping.
        assert_eq!(
            p.worst_case(u64::MAX, u64::MAX).pico(),
            (1_000u128 * u128::from(u64::MAX)) + 5_000 * u128::from(u64::MAX) + 7
        );
    }
}
