"""Preemption when KV blocks run out: the newest sequence is swapped to host memory over
the GPUs' host links, or dropped and recomputed later (vLLM's two modes)."""

from __future__ import annotations

from simulator.engine.entities import Swapped, Waiting


class PreemptionSteps:
    """Preemption and swap-in of a replica (mixed into ``Replica``)."""

    def _preempt_last(self) -> None:
        """Out of KV blocks: preempt the newest sequence (swap it out, or drop it to
        recompute its context later)."""
        ordinal, ctx, remaining, last_token_s, shared = self.batch.pop_last()
        self.preemptions += 1
        self.ledger.preemptions[ordinal] += 1
        request = self.ledger.requests[ordinal]
        if shared:
            self.cache.release(request.prefix_id)
        cfg = self.cfg
        if cfg.preemption == "swap":
            size = ctx * cfg.kv_bytes_per_token
            if self.swap_used_bytes + size <= cfg.swap_space_bytes:
                self.swap_used_bytes += size
                self.swapped_bytes += size
                self._transfer_s += self._host_transfer_s(size)
                self.swapped.append(Swapped(ordinal, ctx, remaining, last_token_s))
                return
        # Recompute prefills the prompt and the tokens generated so far; that pass yields a token.
        self.waiting.appendleft(
            Waiting(
                ordinal, request.arrival_s, ctx, remaining - 1, request.priority, True, last_token_s
            )
        )

    def _host_transfer_s(self, size_bytes: float) -> float:
        """Copy time of a replica's KV over its GPUs' host links, in parallel per GPU."""
        cfg = self.cfg
        return cfg.host_link_latency_s + size_bytes / (cfg.gpus * cfg.host_link_bytes_per_s)

    def _swap_in(self) -> None:
        """Bring swapped sequences back (oldest first) while blocks allow; the copy time is
        charged to the next step."""
        block = self.cfg.kv_block_size
        while self.swapped and self.batch.size < self.cfg.max_num_seqs:
            s = self.swapped[0]
            need = -(-s.context // block)
            if self.free_blocks - need < self.watermark_blocks:
                break
            self.swapped.popleft()
            self._take_blocks(need)
            size = s.context * self.cfg.kv_bytes_per_token
            self.swap_used_bytes -= size
            self.swapped_bytes += size
            self._transfer_s += self._host_transfer_s(size)
            self.batch.append(
                s.ordinal, s.context, s.remaining, s.last_token_s, 0, self.ledger.klass[s.ordinal]
            )
