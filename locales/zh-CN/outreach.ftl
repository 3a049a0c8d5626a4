outreach-title = 需要处理的消息
outreach-filter = 按状态查看
outreach-all = 全部
outreach-due = 预定 { $date }
