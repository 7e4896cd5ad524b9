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
    # ---- s4-pages: after-sales cases, shipments, routing and silences, bin views ----
    **{
        "cases": {"en": "After-sales cases", "zh-CN": "售后工单"},
        "case": {"en": "Case", "zh-CN": "工单"},
        "case_type": {"en": "Type", "zh-CN": "类型"},
        "cases_by_sla": {
            "en": "Open cases first, by first-response due time.",
            "zh-CN": "未结工单在前，按首次响应截止时间排序。",
        },
        "first_response_due": {"en": "First response due", "zh-CN": "首次响应截止"},
        "answered": {"en": "answered", "zh-CN": "已响应"},
        "needs_review": {"en": "needs review", "zh-CN": "待审核"},
        "no_cases": {"en": "No cases match.", "zh-CN": "没有匹配的工单。"},
        "no_aftersales_service": {
            "en": "The aftersales service is not configured for the console.",
            "zh-CN": "控制台未配置售后服务。",
        },
        "no_attachment": {"en": "No such evidence file.", "zh-CN": "没有这个证据文件。"},
        "stages": {"en": "Stages", "zh-CN": "阶段"},
        "actions": {"en": "Actions", "zh-CN": "操作"},
        "no_actions": {"en": "Nothing to do at this stage.", "zh-CN": "此阶段无可执行操作。"},
        "note": {"en": "Note", "zh-CN": "备注"},
        "resolution": {"en": "Resolution", "zh-CN": "处理结果"},
        "satisfaction": {"en": "Satisfaction", "zh-CN": "满意度"},
        "evidence": {"en": "Evidence", "zh-CN": "证据"},
        "no_evidence": {"en": "No evidence yet.", "zh-CN": "暂无证据。"},
        "file": {"en": "File", "zh-CN": "文件"},
        "type": {"en": "Type", "zh-CN": "类型"},
        "size": {"en": "Bytes", "zh-CN": "字节"},
        "refunds": {"en": "Refunds", "zh-CN": "退款"},
        "no_refunds": {"en": "No refunds yet.", "zh-CN": "暂无退款。"},
        "refund": {"en": "Refund", "zh-CN": "退款"},
        "refund_kind": {"en": "For", "zh-CN": "退款类型"},
        "done": {"en": "Done", "zh-CN": "已完成"},
        "approve": {"en": "Approve", "zh-CN": "批准"},
        "reject": {"en": "Reject", "zh-CN": "拒绝"},
        "receive_goods": {"en": "Goods received", "zh-CN": "确认收货"},
        "ship_replacement": {"en": "Ship replacement", "zh-CN": "寄出换货"},
        "finish_repair": {"en": "Repair finished", "zh-CN": "维修完成"},
        "return_to_customer": {"en": "Return to customer", "zh-CN": "寄回客户"},
        "close": {"en": "Close", "zh-CN": "关闭"},
        "collect_evidence": {"en": "Collect evidence", "zh-CN": "收集证据"},
        "investigate": {"en": "Investigate", "zh-CN": "开始调查"},
        "request_feedback": {"en": "Ask for feedback", "zh-CN": "请求反馈"},
        "visit": {"en": "Follow-up visit done", "zh-CN": "已回访"},
        "score": {"en": "Record satisfaction", "zh-CN": "记录满意度"},
        "shipments": {"en": "Shipments", "zh-CN": "物流"},
        "shipment": {"en": "Shipment", "zh-CN": "运单"},
        "list_stalled": {"en": "Stalled", "zh-CN": "停滞"},
        "list_overdue": {"en": "Overdue", "zh-CN": "超时未达"},
        "list_exception": {"en": "Exceptions", "zh-CN": "异常"},
        "list_compensated": {"en": "Compensation given", "zh-CN": "已补偿"},
        "no_shipments": {"en": "No shipments in this list.", "zh-CN": "此列表中没有运单。"},
        "no_logistics_service": {
            "en": "The logistics service is not configured for the console.",
            "zh-CN": "控制台未配置物流服务。",
        },
        "carrier": {"en": "Carrier", "zh-CN": "承运商"},
        "new_carrier": {"en": "New carrier", "zh-CN": "新承运商"},
        "tracking_number": {"en": "Tracking number", "zh-CN": "运单号"},
        "tracking_numbers": {"en": "Tracking numbers", "zh-CN": "运单号记录"},
        "optional": {"en": "optional", "zh-CN": "可选"},
        "promised_by": {"en": "Promised by", "zh-CN": "承诺送达"},
        "last_scan": {"en": "Last scan", "zh-CN": "最后扫描"},
        "exception": {"en": "Exception", "zh-CN": "异常"},
        "compensated_for": {"en": "Compensated for", "zh-CN": "补偿原因"},
        "reassign": {"en": "Reassign carrier", "zh-CN": "更换承运商"},
        "scans": {"en": "Scans", "zh-CN": "扫描记录"},
        "no_scans": {"en": "No scans yet.", "zh-CN": "暂无扫描。"},
        "location": {"en": "Location", "zh-CN": "地点"},
        "routing": {"en": "Routing and silences", "zh-CN": "路由与静默"},
        "routing_tree": {"en": "Routing tree in force", "zh-CN": "生效中的路由树"},
        "routing_file": {"en": "The whole routing file", "zh-CN": "完整路由文件"},
        "version": {"en": "Version", "zh-CN": "版本"},
        "loaded_at": {"en": "loaded", "zh-CN": "加载于"},
        "reload_rejected": {
            "en": "The file on disk was rejected; the version above stays in force",
            "zh-CN": "磁盘上的文件被拒绝；上面的版本仍然生效",
        },
        "silences": {"en": "Silences", "zh-CN": "静默"},
        "no_silences": {"en": "No silences.", "zh-CN": "没有静默。"},
        "matchers": {"en": "Matchers", "zh-CN": "匹配条件"},
        "matchers_one_a_line": {
            "en": 'Matchers, one a line (e.g. rule="shipment.stalled")',
            "zh-CN": '匹配条件，每行一个（例如 rule="shipment.stalled"）',
        },
        "ends": {"en": "Ends", "zh-CN": "结束"},
        "muted": {"en": "Muted", "zh-CN": "已静默"},
        "hours": {"en": "For how many hours", "zh-CN": "持续小时数"},
        "expire": {"en": "Expire now", "zh-CN": "立即结束"},
        "create_silence": {"en": "Create silence", "zh-CN": "创建静默"},
        "silence_created": {"en": "silence created", "zh-CN": "静默已创建"},
        "silence_expired": {"en": "silence expired", "zh-CN": "静默已结束"},
        "deliveries": {"en": "Notification deliveries", "zh-CN": "通知投递记录"},
        "no_deliveries": {"en": "No deliveries.", "zh-CN": "没有投递记录。"},
        "recipient": {"en": "Recipient", "zh-CN": "接收方"},
        "template": {"en": "Template", "zh-CN": "模板"},
        "attempts": {"en": "Attempts", "zh-CN": "尝试次数"},
        "last_error": {"en": "Last error", "zh-CN": "最近错误"},
        "resend": {"en": "Re-send", "zh-CN": "重新发送"},
        "admins_only": {"en": "Only admins may open this page.", "zh-CN": "仅管理员可访问此页面。"},
        "bin_active": {"en": "In the bin", "zh-CN": "回收站中"},
        "bin_restored": {"en": "Restored", "zh-CN": "已恢复"},
        "bin_archived": {"en": "Archived", "zh-CN": "已归档"},
        "bin_purged": {"en": "Purged", "zh-CN": "已清除"},
        "analytics_teams": {"en": "Your teams", "zh-CN": "您的团队"},
        "analytics_all": {"en": "All teams", "zh-CN": "全部团队"},
    },
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
