# ruff: noqa: RUF001  (Chinese text uses full-width punctuation on purpose)
"""The console's words in English and Simplified Chinese; the browser's language is the default
and a cookie keeps the person's choice."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request

LANGUAGES = ("en", "zh-CN")
LANG_COOKIE = "og_lang"

MESSAGES: dict[str, dict[str, str]] = {
    "console": {"en": "orderguard console", "zh-CN": "orderguard 控制台"},
    "sign_in": {"en": "Sign in", "zh-CN": "登录"},
    "sign_out": {"en": "Sign out", "zh-CN": "退出登录"},
    "login": {"en": "Login", "zh-CN": "账号"},
    "password": {"en": "Password", "zh-CN": "密码"},
    "new_password": {
        "en": "New password (12 characters or more)",
        "zh-CN": "新密码（至少 12 个字符）",
    },
    "change_password": {"en": "Change password", "zh-CN": "修改密码"},
    "must_change": {
        "en": "This is a one-time password: choose your own to go on.",
        "zh-CN": "这是一次性密码：请先设置您自己的密码。",
    },
    "bad_sign_in": {"en": "Wrong login or password.", "zh-CN": "账号或密码错误。"},
    "my_queue": {"en": "My queue", "zh-CN": "我的队列"},
    "recycle_bin": {"en": "Recycle bin", "zh-CN": "回收站"},
    "analytics": {"en": "Analytics", "zh-CN": "分析"},
    "people": {"en": "People", "zh-CN": "人员"},
    "team": {"en": "Team", "zh-CN": "团队"},
    "severity": {"en": "Severity", "zh-CN": "级别"},
    "rule": {"en": "Rule", "zh-CN": "规则"},
    "state": {"en": "State", "zh-CN": "状态"},
    "any": {"en": "any", "zh-CN": "全部"},
    "filter": {"en": "Filter", "zh-CN": "筛选"},
    "title": {"en": "Title", "zh-CN": "标题"},
    "due": {"en": "Due", "zh-CN": "截止"},
    "overdue": {"en": "overdue", "zh-CN": "已超时"},
    "claimed_by": {"en": "Claimed by", "zh-CN": "认领人"},
    "no_items": {"en": "Nothing in your queue.", "zh-CN": "您的队列中没有待办。"},
    "no_teams": {
        "en": "You belong to no team yet: ask an admin to add you to one.",
        "zh-CN": "您还不属于任何团队：请联系管理员。",
    },
    "claim": {"en": "Claim", "zh-CN": "认领"},
    "resolve": {"en": "Resolve", "zh-CN": "解决"},
    "dismiss": {"en": "Dismiss", "zh-CN": "忽略"},
    "comment": {"en": "Comment", "zh-CN": "评论"},
    "reason": {"en": "Reason", "zh-CN": "原因"},
    "anomalies": {"en": "Anomalies", "zh-CN": "异常"},
    "labels": {"en": "Labels", "zh-CN": "标签"},
    "links": {"en": "Linked", "zh-CN": "关联"},
    "timeline": {"en": "Timeline", "zh-CN": "时间线"},
    "comments": {"en": "Comments", "zh-CN": "评论"},
    "when": {"en": "When", "zh-CN": "时间"},
    "what": {"en": "What", "zh-CN": "事件"},
    "who": {"en": "Who", "zh-CN": "操作人"},
    "live": {"en": "Live: the queue refreshes itself.", "zh-CN": "实时：队列会自动刷新。"},
    "error": {"en": "That did not work", "zh-CN": "操作未成功"},
    "forbidden": {
        "en": "This work item belongs to a team you are not in.",
        "zh-CN": "该待办属于您不在的团队。",
    },
    "not_found": {"en": "No such work item.", "zh-CN": "没有这个待办。"},
    "display_name": {"en": "Name", "zh-CN": "姓名"},
    "admin": {"en": "Admin", "zh-CN": "管理员"},
    "disabled": {"en": "Disabled", "zh-CN": "已停用"},
    "disable": {"en": "Disable", "zh-CN": "停用"},
    "add_person": {"en": "Add a person", "zh-CN": "添加人员"},
    "teams_roles": {
        "en": "Teams (team:role, comma-separated)",
        "zh-CN": "团队（团队:角色，逗号分隔）",
    },
    "add": {"en": "Add", "zh-CN": "添加"},
    "no_order_service": {
        "en": "The order service is not configured for the console.",
        "zh-CN": "控制台未配置订单服务。",
    },
    "restore": {"en": "Restore", "zh-CN": "恢复"},
    "restore_selected": {"en": "Restore selected", "zh-CN": "恢复所选"},
    "restored_n": {"en": "Orders restored", "zh-CN": "已恢复订单数"},
    "order": {"en": "Order", "zh-CN": "订单"},
    "category": {"en": "Category", "zh-CN": "类别"},
    "channel": {"en": "Channel", "zh-CN": "渠道"},
    "sku": {"en": "SKU", "zh-CN": "商品"},
    "customer_type": {"en": "Customer type", "zh-CN": "客户类型"},
    "week": {"en": "Week", "zh-CN": "周"},
    "moved_at": {"en": "Moved in", "zh-CN": "移入时间"},
    "moved_by": {"en": "Moved by", "zh-CN": "操作人"},
    "amount": {"en": "Amount", "zh-CN": "金额"},
    "from": {"en": "From", "zh-CN": "开始"},
    "to": {"en": "To", "zh-CN": "结束"},
    "bin_empty": {"en": "No orders match.", "zh-CN": "没有匹配的订单。"},
    "by_reason": {"en": "Orders by reason", "zh-CN": "按原因的订单数"},
    "by_sku": {"en": "Orders by product", "zh-CN": "按商品的订单数"},
    "by_channel": {"en": "Orders by channel", "zh-CN": "按渠道的订单数"},
    "by_week": {"en": "Orders by week", "zh-CN": "按周的订单数"},
    "anomalies_per_rule": {"en": "Anomalies per rule (7 days)", "zh-CN": "各规则异常数（7 天）"},
    "anomalies_per_day": {"en": "Anomalies per day", "zh-CN": "每日异常数"},
    "items_per_team": {
        "en": "Work items opened per team (7 days)",
        "zh-CN": "各团队新建待办（7 天）",
    },
    "response_times": {
        "en": "Time to claim and resolve (seconds)",
        "zh-CN": "认领与解决用时（秒）",
    },
    "bin_pareto": {"en": "Recycle bin: reasons (Pareto)", "zh-CN": "回收站：原因帕累托"},
    "total": {"en": "Total", "zh-CN": "合计"},
    "items": {"en": "Items", "zh-CN": "待办数"},
    "orders": {"en": "Orders", "zh-CN": "订单"},
    "customer": {"en": "Customer", "zh-CN": "客户"},
    "status": {"en": "Status", "zh-CN": "订单状态"},
    "hold_reason": {"en": "Hold reason", "zh-CN": "挂起原因"},
    "priority": {"en": "Priority", "zh-CN": "优先级"},
    "phone": {"en": "Phone", "zh-CN": "电话"},
    "lines": {"en": "Lines", "zh-CN": "商品行"},
    "quantity": {"en": "Quantity", "zh-CN": "数量"},
    "hold": {"en": "Hold", "zh-CN": "挂起"},
    "release": {"en": "Release", "zh-CN": "释放"},
    "cancel": {"en": "Cancel order", "zh-CN": "取消订单"},
    "move_to_bin": {"en": "Move to recycle bin", "zh-CN": "移入回收站"},
    "search": {"en": "Search", "zh-CN": "搜索"},
    "no_orders": {"en": "No orders match.", "zh-CN": "没有匹配的订单。"},
    "no_data": {"en": "No data in this period.", "zh-CN": "此期间没有数据。"},
    # lead reassignment and OpenID Connect sign-in (s4-auth)
    "reassign": {"en": "Reassign", "zh-CN": "转派"},
    "reassign_to": {"en": "Give to", "zh-CN": "转派给"},
    "sign_in_with": {"en": "Sign in with", "zh-CN": "使用以下方式登录："},
    "or_local": {"en": "or with a local account", "zh-CN": "或使用本地账号"},
    "oidc_failed": {
        "en": "Sign-in with the identity provider failed; try again.",
        "zh-CN": "通过身份提供方登录失败，请重试。",
    },
    "oidc_login_taken": {
        "en": "This login belongs to another account; ask an administrator.",
        "zh-CN": "该账号名已被其他账号使用，请联系管理员。",
    },
    "signing_in": {"en": "Signing you in…", "zh-CN": "正在登录…"},
}


def language_of(request: Request) -> str:
    """The person's choice, else the first language of the browser's we speak, else English."""
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return "en"


def translator(language: str) -> Callable[[str], str]:
    def t(key: str) -> str:
        words = MESSAGES.get(key)
        return words.get(language, words["en"]) if words else key

    return t
