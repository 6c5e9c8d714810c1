//! `#[virtual_actor]`: the `VirtualActor`, `VirtualHandler<M>` and `Hosted` impls of
//! an `impl` block whose `async fn`s are handlers.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{FnArg, ImplItem, ImplItemFn, ItemImpl, LitStr, ReturnType, Type};

/// The keys of `#[virtual_actor(...)]`.
struct Args {
    kind: Option<LitStr>,
    key: Option<Type>,
    state: Option<Type>,
    /// The contract the kind fulfils: it gives the kind's name and key type.
    contract: Option<syn::Path>,
    /// `state_version = N`: `VirtualActor::STATE_VERSION`.
    state_version: Option<syn::LitInt>,
    /// `upgrade_state = path`: a `fn(u32, serde_json::Value) -> Result<Value, String>`
    /// used as `VirtualActor::upgrade_state`.
    upgrade_state: Option<syn::Path>,
}

/// One handler: the inherent method `name` handles messages of type `msg`.
struct Handler {
    name: syn::Ident,
    msg: Type,
    takes_ctx: bool,
    /// The span of the declared reply type, where a mismatch with `M::Reply` is shown.
    reply_span: Span,
}

const HANDLER_SHAPE: &str =
    "`async fn name(&mut self, msg: M, ctx: &mut VirtualContext<'_, Self>) -> M::Reply` \
     (`ctx` may be left out)";

pub(crate) fn expand(args: TokenStream, item: ItemImpl) -> syn::Result<TokenStream> {
    let args = parse_args(args)?;
    // The kind's name and key type: from the contract, or given here.
    let (kind, key, proof) = match (&args.contract, args.kind) {
        (Some(contract), None) => {
            if let Some(key) = &args.key {
                return Err(syn::Error::new(
                    key.span(),
                    "`key` comes from the contract: remove it (the contract's `key = ...` is the kind's key type)",
                ));
            }
            let span = contract.span();
            (
                quote_spanned!(span=> <#contract as ::granary::__macros::Contract>::NAME),
                quote_spanned!(span=> <#contract as ::granary::__macros::VirtualContract>::Key),
                // Spanned on the contract, so that a missing handler is reported there.
                quote_spanned!(span=> .fulfilling::<#contract>()),
            )
        }
        (Some(_), Some(kind)) => {
            return Err(syn::Error::new(
                kind.span(),
                "`kind` comes from the contract: remove it (the contract's `kind = \"...\"` names the kind)",
            ));
        }
        (None, Some(kind)) => {
            let key = args
                .key
                .map_or_else(|| quote!(::std::string::String), |k| k.to_token_stream());
            (quote!(#kind), key, quote!())
        }
        (None, None) => {
            return Err(syn::Error::new(
                Span::call_site(),
                "#[virtual_actor] needs the kind's name: `#[virtual_actor(kind = \"app.Counter\")]` \
                 (it names stored state, so it is never derived from the module path), \
                 or the contract it fulfils: `#[virtual_actor(contract = CounterApi)]`",
            ));
        }
    };
    if let Some((_, path, _)) = &item.trait_ {
        return Err(syn::Error::new(
            path.span(),
            "#[virtual_actor] goes on an inherent `impl Actor { ... }` block, not on a trait impl",
        ));
    }
    if !item.generics.params.is_empty() {
        return Err(syn::Error::new(
            item.generics.span(),
            "#[virtual_actor] does not take generic actors: a kind name names one type",
        ));
    }
    let state = args
        .state
        .map_or_else(|| quote!(()), |s| s.to_token_stream());
    let self_ty = &item.self_ty;
    let state_version = args
        .state_version
        .as_ref()
        .map(|v| quote!(const STATE_VERSION: u32 = #v;));
    let upgrade_state = args.upgrade_state.as_ref().map(|f| {
        quote! {
            fn upgrade_state(
                from: u32,
                state: ::granary::virtual_actors::__private::serde_json::Value,
            ) -> ::core::result::Result<::granary::virtual_actors::__private::serde_json::Value, ::std::string::String> {
                #f(from, state)
            }
        }
    });

    let mut hooks = Vec::new();
    let mut has_activate = false;
    let mut handler_fns = Vec::new();
    let mut handlers: Vec<Handler> = Vec::new();
    for impl_item in &item.items {
        let ImplItem::Fn(f) = impl_item else {
            return Err(syn::Error::new(
                impl_item.span(),
                "a #[virtual_actor] block holds only handlers and the `activate`, \
                 `on_activate`, `on_deactivate` hooks; put other items in another `impl` block",
            ));
        };
        match f.sig.ident.to_string().as_str() {
            "activate" => {
                has_activate = true;
                hooks.push(f.clone());
            }
            "on_activate" | "on_deactivate" => hooks.push(f.clone()),
            _ => {
                let handler = handler_of(f)?;
                let msg = handler.msg.to_token_stream().to_string();
                if handlers
                    .iter()
                    .any(|h| h.msg.to_token_stream().to_string() == msg)
                {
                    return Err(syn::Error::new(
                        handler.msg.span(),
                        format!(
                            "a second handler of `{msg}`: an actor handles each message type once"
                        ),
                    ));
                }
                handlers.push(handler);
                handler_fns.push(f);
            }
        }
    }

    let activate = if has_activate {
        quote!()
    } else {
        // A struct without fields (`struct Counter;`, the common case) is built as
        // `Self {}`; any other must write `activate`. Spanned on the actor type, so
        // "missing fields" points there.
        quote_spanned! {self_ty.span()=>
            fn activate(_key: &Self::Key) -> Self {
                Self {}
            }
        }
    };
    let handler_impls = handlers.iter().map(|h| {
        let Handler {
            name,
            msg,
            takes_ctx,
            reply_span,
        } = h;
        let call = if *takes_ctx {
            quote_spanned!(*reply_span=> <#self_ty>::#name(self, msg, ctx).await)
        } else {
            quote_spanned!(*reply_span=> <#self_ty>::#name(self, msg).await)
        };
        let ctx = if *takes_ctx {
            quote!(ctx)
        } else {
            quote!(_ctx)
        };
        quote_spanned! {msg.span()=>
            impl ::granary::__macros::VirtualHandler<#msg> for #self_ty {
                async fn handle(
                    &mut self,
                    msg: #msg,
                    #ctx: &mut ::granary::__macros::VirtualContext<'_, Self>,
                ) -> <#msg as ::granary::__macros::Message>::Reply {
                    #call
                }
            }
        }
    });
    let accepts = handlers.iter().map(|h| {
        let msg = &h.msg;
        if is_reminder(msg) {
            quote!(.reminders())
        } else {
            quote!(.handles::<#msg>())
        }
    });
    let attrs = &item.attrs;
    Ok(quote! {
        #(#attrs)*
        impl #self_ty {
            #(#handler_fns)*
        }

        impl ::granary::__macros::VirtualActor for #self_ty {
            const KIND: &'static str = #kind;
            type Key = #key;
            type State = #state;
            #state_version
            #upgrade_state
            #activate
            #(#hooks)*
        }

        #(#handler_impls)*

        impl ::granary::__macros::Hosted for #self_ty {
            fn kind() -> ::granary::__macros::Kind<Self> {
                ::granary::__macros::Kind::new() #(#accepts)* #proof
            }
        }
    })
}

fn parse_args(args: TokenStream) -> syn::Result<Args> {
    let mut parsed = Args {
        kind: None,
        key: None,
        state: None,
        contract: None,
        state_version: None,
        upgrade_state: None,
    };
    let parser = syn::meta::parser(|meta| {
        let twice = |name: &str| meta.error(format!("`{name}` is given twice"));
        if meta.path.is_ident("kind") {
            if parsed.kind.is_some() {
                return Err(twice("kind"));
            }
            let kind: LitStr = meta.value()?.parse()?;
            if kind.value().is_empty() {
                return Err(syn::Error::new(kind.span(), "the kind's name is empty"));
            }
            parsed.kind = Some(kind);
        } else if meta.path.is_ident("key") {
            if parsed.key.is_some() {
                return Err(twice("key"));
            }
            parsed.key = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident("state") {
            if parsed.state.is_some() {
                return Err(twice("state"));
            }
            parsed.state = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident("contract") {
            if parsed.contract.is_some() {
                return Err(twice("contract"));
            }
            parsed.contract = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident("state_version") {
            if parsed.state_version.is_some() {
                return Err(twice("state_version"));
            }
            let version: syn::LitInt = meta.value()?.parse()?;
            if !matches!(version.base10_parse::<u32>(), Ok(v) if v >= 1) {
                return Err(syn::Error::new(
                    version.span(),
                    "the state version is a whole number from 1 (u32)",
                ));
            }
            parsed.state_version = Some(version);
        } else if meta.path.is_ident("upgrade_state") {
            if parsed.upgrade_state.is_some() {
                return Err(twice("upgrade_state"));
            }
            parsed.upgrade_state = Some(meta.value()?.parse()?);
        } else {
            return Err(crate::unknown_key(
                &meta,
                "virtual_actor",
                "`kind = \"...\"`, `key = Type`, `state = Type`, `contract = Contract`, \
                 `state_version = N` or `upgrade_state = path`",
            ));
        }
        Ok(())
    });
    parser.parse2(args)?;
    Ok(parsed)
}

/// Checks that `f` is a handler and reads its message type.
fn handler_of(f: &ImplItemFn) -> syn::Result<Handler> {
    let sig = &f.sig;
    let name = &sig.ident;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span(),
            format!("handler `{name}` must be an `async fn`: a handler is {HANDLER_SHAPE}"),
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            sig.generics.span(),
            format!("handler `{name}` cannot be generic: a handler is {HANDLER_SHAPE}"),
        ));
    }
    let wrong = |span: Span, what: &str| {
        syn::Error::new(
            span,
            format!("handler `{name}` {what}: a handler is {HANDLER_SHAPE}"),
        )
    };
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_some() => {}
        Some(other) => return Err(wrong(other.span(), "must take `&mut self` first")),
        None => return Err(wrong(name.span(), "must take `&mut self` and a message")),
    }
    let msg = match inputs.next() {
        Some(FnArg::Typed(t)) => (*t.ty).clone(),
        _ => return Err(wrong(name.span(), "takes no message")),
    };
    let takes_ctx = match inputs.next() {
        None => false,
        Some(FnArg::Typed(t)) if matches!(&*t.ty, Type::Reference(r) if r.mutability.is_some()) => {
            true
        }
        Some(other) => {
            return Err(wrong(
                other.span(),
                "takes a context of another type than `&mut VirtualContext<'_, Self>`",
            ))
        }
    };
    if let Some(extra) = inputs.next() {
        return Err(wrong(extra.span(), "takes more than one message"));
    }
    let reply_span = match &sig.output {
        ReturnType::Default => name.span(),
        ReturnType::Type(_, ty) => ty.span(),
    };
    Ok(Handler {
        name: name.clone(),
        msg,
        takes_ctx,
        reply_span,
    })
}

/// Whether `msg` names granary's `ReminderFired` (hosted with `Kind::reminders`).
fn is_reminder(msg: &Type) -> bool {
    matches!(msg, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "ReminderFired"))
}
