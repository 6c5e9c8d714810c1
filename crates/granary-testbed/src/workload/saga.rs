//! The saga: `tb.Account`s and the coordinator `tb.Teller`.
//!
//! A transfer is invoked on a teller, which asks the debited account, then the
//! credited one. Both steps are idempotent by the transfer's op id. The teller
//! persists the transfer's intent before the first step and its outcome after the
//! last; on activation it finishes every transfer still pending, so a crash
//! mid-saga completes on re-activation (or when the client re-drives the transfer
//! with the same op id, which the client does until the transfer ends).
//!
//! A balance never goes below 0: a debit larger than the balance is **refused**;
//! the account remembers the refusal (a repeat gets the same answer, even if the
//! balance has grown since), and the teller ends the transfer as refused without
//! crediting anything. The client records a refused transfer as
//! [`crate::history::Outcome::Failed`]: it took no effect on either side.

use std::time::Duration;

use granary::virtual_actors::{Kind, VirtualActor, VirtualContext, VirtualHandler};
use granary::BoxError;
use serde::{Deserialize, Serialize};

use super::{with_final, ActivationLog, FinalState, ReadFinal};
use crate::history::Stamp;

/// Every account's balance before its first operation.
pub const INITIAL_BALANCE: u64 = 1_000;

/// How long a teller waits for one account step.
const STEP_DEADLINE: Duration = Duration::from_secs(3);

/// An account's persisted state.
#[derive(Debug, Serialize, Deserialize)]
pub struct AccountState {
    /// The balance.
    pub balance: u64,
    /// The transfer op ids applied (debits and credits), in order.
    pub applied: Vec<u64>,
    /// The debits refused for want of funds.
    pub refused: Vec<u64>,
}

impl Default for AccountState {
    fn default() -> Self {
        AccountState {
            balance: INITIAL_BALANCE,
            applied: Vec::new(),
            refused: Vec::new(),
        }
    }
}

/// An account keyed by name.
#[derive(Debug)]
pub struct Account {
    log: ActivationLog,
}

super::recorded_kind!(Account, "tb.Account", AccountState);

/// Takes `amount` for transfer `op`, once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Debit {
    /// The transfer's op id.
    pub op: u64,
    /// How much.
    pub amount: u64,
}

/// Adds `amount` for transfer `op`, once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credit {
    /// The transfer's op id.
    pub op: u64,
    /// How much.
    pub amount: u64,
}

/// How an account step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// Applied (now or by an earlier attempt).
    Applied,
    /// Refused for want of funds (now or by an earlier attempt); nothing changed.
    Refused,
}

/// A step's reply, or why the state write failed (the step may or may not be
/// durable then; the teller retries it with the same op id).
pub type StepReply = Result<Step, String>;

impl granary::Message for Debit {
    type Reply = StepReply;
}
impl granary::Message for Credit {
    type Reply = StepReply;
}
granary::register_message!(Debit, "tb.Debit");
granary::register_message!(Credit, "tb.Credit");
granary::register_message!(StepReply, "tb.StepReply");

impl Account {
    /// Applies a step (`delta` signed by its direction), once per op id.
    async fn step(
        &mut self,
        op: u64,
        amount: u64,
        debit: bool,
        ctx: &mut VirtualContext<'_, Self>,
    ) -> StepReply {
        let start = Stamp::now();
        let s = ctx.state();
        if s.applied.contains(&op) {
            self.log.repeated(op, start);
            return Ok(Step::Applied);
        }
        if s.refused.contains(&op) {
            self.log.handled(op, false, start);
            return Ok(Step::Refused);
        }
        let refuse = debit && s.balance < amount;
        let state = ctx.state_mut();
        if refuse {
            state.refused.push(op);
        } else {
            state.applied.push(op);
            if debit {
                state.balance -= amount;
            } else {
                state.balance += amount;
            }
        }
        if let Err(e) = ctx.write_state().await {
            let state = ctx.state_mut();
            if refuse {
                state.refused.retain(|o| *o != op);
            } else {
                state.applied.retain(|o| *o != op);
                if debit {
                    state.balance += amount;
                } else {
                    state.balance -= amount;
                }
            }
            self.log.handled(op, false, start);
            return Err(e.to_string());
        }
        self.log.handled(op, !refuse, start);
        Ok(if refuse { Step::Refused } else { Step::Applied })
    }
}

impl VirtualHandler<Debit> for Account {
    async fn handle(&mut self, msg: Debit, ctx: &mut VirtualContext<'_, Self>) -> StepReply {
        self.step(msg.op, msg.amount, true, ctx).await
    }
}

impl VirtualHandler<Credit> for Account {
    async fn handle(&mut self, msg: Credit, ctx: &mut VirtualContext<'_, Self>) -> StepReply {
        self.step(msg.op, msg.amount, false, ctx).await
    }
}

impl VirtualHandler<ReadFinal> for Account {
    async fn handle(&mut self, msg: ReadFinal, ctx: &mut VirtualContext<'_, Self>) -> FinalState {
        let start = Stamp::now();
        let s = ctx.state();
        let reply = FinalState {
            value: s.balance,
            applied: s.applied.clone(),
            version: None,
        };
        self.log.handled(msg.op, false, start);
        reply
    }
}

/// The account kind with its messages registered.
pub fn account_kind() -> Kind<Account> {
    with_final(Kind::<Account>::new())
        .handles::<Debit>()
        .handles::<Credit>()
}

/// Moves `amount` from account `from` to account `to` (account keys, not
/// identities), once per `op`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// The client's op id.
    pub op: u64,
    /// The debited account's key.
    pub from: String,
    /// The credited account's key.
    pub to: String,
    /// How much.
    pub amount: u64,
}

/// How a transfer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferEnd {
    /// Debited and credited.
    Done,
    /// The debit was refused; nothing moved.
    Refused,
}

/// A transfer's end, or why it is not finished yet (it stays pending: re-drive it).
pub type TransferReply = Result<TransferEnd, String>;

impl granary::Message for Transfer {
    type Reply = TransferReply;
}
granary::register_message!(Transfer, "tb.Transfer");
granary::register_message!(TransferReply, "tb.TransferReply");

/// A teller's persisted state.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct TellerState {
    /// Transfers whose intent is recorded and whose end is not.
    pub pending: Vec<Transfer>,
    /// Transfers ended, with how.
    pub ended: Vec<(u64, TransferEnd)>,
}

/// The coordinator of transfers.
#[derive(Debug)]
pub struct Teller {
    log: ActivationLog,
}

impl VirtualActor for Teller {
    const KIND: &'static str = "tb.Teller";
    type Key = String;
    type State = TellerState;

    fn activate(key: &String) -> Self {
        Teller {
            log: ActivationLog::new(Self::KIND, key),
        }
    }

    /// Finishes the transfers an earlier activation left pending.
    async fn on_activate(&mut self, ctx: &mut VirtualContext<'_, Self>) -> Result<(), BoxError> {
        self.log.started();
        let pending = ctx.state().pending.clone();
        for transfer in pending {
            let start = Stamp::now();
            // A failure leaves it pending for the client's re-drive.
            let finished = run_transfer(&transfer, ctx).await;
            self.log.handled(transfer.op, finished.is_ok(), start);
        }
        Ok(())
    }

    async fn on_deactivate(&mut self, ctx: &mut VirtualContext<'_, Self>) {
        self.log.ended(ctx.deactivation_reason());
    }
}

impl VirtualHandler<Transfer> for Teller {
    async fn handle(&mut self, msg: Transfer, ctx: &mut VirtualContext<'_, Self>) -> TransferReply {
        let start = Stamp::now();
        if let Some((_, end)) = ctx.state().ended.iter().find(|(op, _)| *op == msg.op) {
            let end = *end;
            self.log.handled(msg.op, false, start);
            return Ok(end);
        }
        if !ctx.state().pending.iter().any(|t| t.op == msg.op) {
            ctx.state_mut().pending.push(msg.clone());
            if let Err(e) = ctx.write_state().await {
                ctx.state_mut().pending.retain(|t| t.op != msg.op);
                self.log.handled(msg.op, false, start);
                return Err(format!("recording the intent: {e}"));
            }
        }
        let result = run_transfer(&msg, ctx).await;
        self.log.handled(msg.op, result.is_ok(), start);
        result
    }
}

/// Runs a pending transfer's steps and records its end; an `Err` leaves it pending.
async fn run_transfer(t: &Transfer, ctx: &mut VirtualContext<'_, Teller>) -> TransferReply {
    let debit = ctx
        .get::<Account>(t.from.clone())
        .ask_timeout(
            Debit {
                op: t.op,
                amount: t.amount,
            },
            STEP_DEADLINE,
        )
        .await
        .map_err(|e| format!("debit: {e}"))??;
    let end = match debit {
        Step::Refused => TransferEnd::Refused,
        Step::Applied => {
            match ctx
                .get::<Account>(t.to.clone())
                .ask_timeout(
                    Credit {
                        op: t.op,
                        amount: t.amount,
                    },
                    STEP_DEADLINE,
                )
                .await
                .map_err(|e| format!("credit: {e}"))??
            {
                Step::Applied => TransferEnd::Done,
                Step::Refused => return Err("a credit was refused".into()),
            }
        }
    };
    let state = ctx.state_mut();
    state.pending.retain(|p| p.op != t.op);
    state.ended.push((t.op, end));
    if let Err(e) = ctx.write_state().await {
        let state = ctx.state_mut();
        state.ended.retain(|(op, _)| *op != t.op);
        state.pending.push(t.clone());
        return Err(format!("recording the end: {e}"));
    }
    Ok(end)
}

impl VirtualHandler<ReadFinal> for Teller {
    async fn handle(&mut self, msg: ReadFinal, ctx: &mut VirtualContext<'_, Self>) -> FinalState {
        let start = Stamp::now();
        let s = ctx.state();
        let reply = FinalState {
            value: s.pending.len() as u64,
            applied: s.ended.iter().map(|(op, _)| *op).collect(),
            version: None,
        };
        self.log.handled(msg.op, false, start);
        reply
    }
}

/// The teller kind with its messages registered.
pub fn teller_kind() -> Kind<Teller> {
    with_final(Kind::<Teller>::new()).handles::<Transfer>()
}
